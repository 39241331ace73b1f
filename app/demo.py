"""Seed data for `waybill demo`: a catalog, an admin, and a user with money and a key."""
from __future__ import annotations

from app.accounts.models import User
from app.accounts.service import create_user, issue_key
from app.billing.pricing import parse_usd
from app.billing.wallets import credit, wallet_of
from app.catalog.models import Model
from app.catalog.sync import sync_catalog
from app.database import write_transaction
from app.extensions import db
from app.schema import upgrade_schema

ADMIN = ("admin@waybill.test", "admin-password")
USER = ("user@waybill.test", "user-password")
STARTING_MONEY = {"credit": "20.00", "routed": "10.00"}


def _ensure_user(email: str, password: str, is_admin: bool) -> tuple[User, bool]:
    user = db.session.scalar(db.select(User).where(User.email == email))
    if user is not None:
        return user, False
    return create_user(email, password, is_admin=is_admin), True


def seed_demo(base_url: str) -> list[str]:
    """Create the demo data once (later runs reuse it) and return what to print."""
    upgrade_schema()
    sync_catalog()
    with write_transaction():
        for model in db.session.scalars(db.select(Model).where(~Model.published)):
            model.published = True
    _ensure_user(*ADMIN, is_admin=True)
    user, created = _ensure_user(*USER, is_admin=False)
    if created:
        for kind, amount in STARTING_MONEY.items():
            credit(wallet_of(user.id, kind).id, parse_usd(amount), memo="demo money")
    issued = issue_key(user, name="demo")
    return [
        f"Waybill demo at {base_url}/",
        f"  admin: {ADMIN[0]} / {ADMIN[1]}",
        f"  user:  {USER[0]} / {USER[1]} (credit ${STARTING_MONEY['credit']}, routed ${STARTING_MONEY['routed']})",
        f"  OpenAI base_url: {base_url}/v1",
        f"  API key: {issued.secret}",
    ]
