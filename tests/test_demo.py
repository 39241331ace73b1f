"""`waybill demo` seeds a world where every model answers through the simulator."""
from __future__ import annotations

import openai
import pytest
from sqlalchemy import func

from app.accounts.models import User
from app.billing.models import LedgerEntry, Wallet
from app.catalog.models import Model
from app.demo import DEMO_ROUTES, USER, seed_demo
from app.extensions import db
from app.routing.models import Channel, RouteStep


def _key_of(lines: list[str]) -> str:
    key = lines[-1].split()[-1]
    assert key.startswith("wb-")
    return key


def _client(live_server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=key, max_retries=0)


def _row_counts() -> dict[str, int]:
    return {table.__name__: db.session.scalar(db.select(func.count()).select_from(table))
            for table in (User, Channel, RouteStep, Model)}


def _demo_money_per_wallet() -> dict[str, int]:
    """How many "demo money" entries each of the demo user's wallets has, by kind."""
    rows = db.session.execute(
        db.select(Wallet.kind, func.count(LedgerEntry.id))
        .join(User, User.id == Wallet.user_id)
        .outerjoin(LedgerEntry, (LedgerEntry.wallet_id == Wallet.id) & (LedgerEntry.memo == "demo money"))
        .where(User.email == USER[0]).group_by(Wallet.kind))
    return dict(rows.all())


def test_demo_seed_serves_every_routed_model(app, simulator_server, live_server):
    client = _client(live_server, _key_of(seed_demo(base_url=live_server, simulator_root=simulator_server.root)))
    for model, route in DEMO_ROUTES.items():
        if model.startswith("text-embedding"):
            raw = client.embeddings.with_raw_response.create(model=model, input="hello")
        else:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["X-Waybill-Route"] == route[0], model


def test_second_demo_seed_only_replaces_the_key(app, simulator_server, live_server):
    first_lines = seed_demo(base_url=live_server, simulator_root=simulator_server.root)
    first = _client(live_server, _key_of(first_lines))
    assert first.models.list().data  # used, so a cached grant would have to be dropped by the revoke
    counts = _row_counts()

    second_lines = seed_demo(base_url=live_server, simulator_root=simulator_server.root)

    assert _row_counts() == counts
    assert _demo_money_per_wallet() == {"credit": 1, "routed": 1}
    assert not any("revoked" in line for line in first_lines)
    assert "revoked 1 API key(s) from earlier demo runs" in second_lines[-2]
    with pytest.raises(openai.AuthenticationError) as rejected:
        first.models.list()
    assert rejected.value.status_code == 401
    assert _client(live_server, _key_of(second_lines)).models.list().data
