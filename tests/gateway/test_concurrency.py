"""200 concurrent mixed requests against flaky upstreams leave every ledger invariant green."""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func

from app.extensions import db
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green

REQUESTS = 200
CONCURRENCY = 20


def _one(base: str, key: str, index: int) -> str:
    """One request of a seeded random kind; returns how it ended, as the client saw it."""
    rng = random.Random(index)
    kind = rng.choice(["chat", "chat", "stream", "stream_usage", "stream_abandoned", "embeddings"])
    headers = {"Authorization": f"Bearer {key}"}
    if kind == "embeddings":
        response = requests.post(f"{base}/v1/embeddings", headers=headers, timeout=30,
                                 json={"model": "text-embedding-3-small", "input": f"text {index}"})
        return f"{kind} {response.status_code}"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {index} " * rng.randint(1, 40)}],
            "max_tokens": rng.choice([None, 5, 50, 500])}
    if kind.startswith("stream"):
        body.update(stream=True, stream_options={"include_usage": kind == "stream_usage"})
    with requests.post(f"{base}/v1/chat/completions", headers=headers, json=body, stream=True, timeout=30) as response:
        if kind == "stream_abandoned":
            next(response.iter_lines(), None)  # read a little, then hang up
            return f"{kind} {response.status_code}"
        response.content  # read everything
        return f"{kind} {response.status_code}"


def test_two_hundred_concurrent_mixed_requests_with_random_faults(gateway, live_server):
    gateway.sim.set_fault("primary", chaos=0.4)
    gateway.sim.set_fault("backup", chaos=0.25)
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        outcomes = list(pool.map(lambda i: _one(live_server, gateway.key, i), range(REQUESTS)))
    statuses = {o.split()[1] for o in outcomes}
    assert statuses <= {"200", "400", "502", "503"}, outcomes
    assert outcomes.count("chat 200") > 0 and any(o.startswith("stream") for o in outcomes)

    # Abandoned streams settle when the server notices the hang-up: wait for every hold to end.
    deadline = time.monotonic() + 30
    while gateway.balances()["credit"][1] or gateway.balances()["routed"][1]:
        assert time.monotonic() < deadline, "holds still open 30 s after the last request"
        time.sleep(0.2)
    assert_ledger_green()
    receipts = db.session.scalar(db.select(func.count(Receipt.id)))
    assert receipts == REQUESTS
    assert db.session.scalar(db.select(func.count(Receipt.id)).where(Receipt.status == "interrupted",
                                                                      Receipt.failure_stage.is_(None))) == 0
    charged = db.session.scalar(db.select(func.coalesce(func.sum(Receipt.charge), 0)))
    balances = gateway.balances()
    assert (10_000_000 - balances["credit"][0]) + (10_000_000 - balances["routed"][0]) == charged
    # The faults really happened: some requests fell back, some streams were cut or abandoned.
    assert db.session.scalar(db.select(func.count(Receipt.id)).where(Receipt.fallback_used)) > 0
    assert db.session.scalar(db.select(func.count(Receipt.id)).where(Receipt.status == "interrupted")) > 0
