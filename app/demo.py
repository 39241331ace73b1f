"""Seed data for `waybill demo`: catalog, channels on the simulator, routes, an admin and a user."""
from __future__ import annotations

from app.accounts.models import ApiKey, User
from app.accounts.service import create_user, issue_key, revoke_key
from app.billing.pricing import parse_usd
from app.billing.wallets import credit, wallet_of
from app.catalog.models import Model
from app.catalog.sync import sync_catalog
from app.database import write_transaction
from app.extensions import db
from app.routing.config_file import apply_config
from app.schema import upgrade_schema

ADMIN = ("admin@waybill.test", "admin-password")
USER = ("user@waybill.test", "user-password")
STARTING_MONEY = {"credit": "20.00", "routed": "10.00"}
DEMO_KEY_NAME = "demo"

# (name, label, provider, lane, multiplier): all served by the local simulator.
DEMO_CHANNELS = [
    ("openai-direct", "OpenAI direct", "openai", "official", 1.0),
    ("anthropic-direct", "Anthropic direct", "anthropic", "official", 1.0),
    ("gemini-direct", "Google direct", "gemini", "official", 1.0),
    ("relay-a", "Relay A", "openai-compatible", "routed", 0.8),
    ("relay-b", "Relay B", "openai-compatible", "routed", 1.1),
]
# Where each provider's SDK puts its API root under a simulated channel.
API_ROOT_SUFFIX = {"openai": "/v1", "openai-compatible": "/v1", "anthropic": "", "gemini": ""}
# model -> route, primary first; every model has an official primary and a routed backup.
DEMO_ROUTES = {
    "gpt-4o-mini": ["openai-direct", "relay-a"],
    "gpt-4o": ["openai-direct", "relay-a"],
    "gpt-4.1-mini": ["openai-direct", "relay-b"],
    "gpt-5-mini": ["openai-direct", "relay-a", "relay-b"],
    "claude-sonnet-4-6": ["anthropic-direct", "relay-a", "relay-b"],
    "claude-haiku-4-5-20251001": ["anthropic-direct", "relay-b"],
    "gemini-2.5-flash": ["gemini-direct", "relay-b", "relay-a"],
    "text-embedding-3-small": ["openai-direct", "relay-a"],
}


def demo_config(simulator_root: str) -> dict:
    """The demo's channels and routes, pointed at a simulator."""
    channels = []
    for name, label, provider, lane, multiplier in DEMO_CHANNELS:
        served = {m: m for m, route in DEMO_ROUTES.items() if name in route}
        channels.append({"name": name, "label": label, "provider": provider,
                         "base_url": f"{simulator_root}/{name}{API_ROOT_SUFFIX[provider]}",
                         "api_key": f"sk-demo-{name}-key",
                         "lane": lane, "price_multiplier": multiplier, "timeout_s": 30, "models": served})
    routes = [{"model": model, "channels": names} for model, names in DEMO_ROUTES.items()]
    return {"channels": channels, "routes": routes}


def _ensure_user(email: str, password: str, is_admin: bool) -> tuple[User, bool]:
    user = db.session.scalar(db.select(User).where(User.email == email))
    if user is not None:
        return user, False
    return create_user(email, password, is_admin=is_admin), True


def _revoke_demo_keys(user: User) -> int:
    """Revoke the user's live keys from earlier demo runs, so only the key printed last works."""
    key_ids = db.session.scalars(db.select(ApiKey.id).where(
        ApiKey.user_id == user.id, ApiKey.name == DEMO_KEY_NAME, ~ApiKey.revoked)).all()
    return sum(revoke_key(user.id, key_id) for key_id in key_ids)


def seed_demo(base_url: str, simulator_root: str) -> list[str]:
    """Create the demo data once (later runs reuse it, with a fresh key) and return what to print."""
    upgrade_schema()
    sync_catalog()
    with write_transaction():
        # Only routed models are published: a published model with no route would answer 503.
        for model in db.session.scalars(db.select(Model).where(~Model.published, Model.id.in_(DEMO_ROUTES))):
            model.published = True
    apply_config(demo_config(simulator_root), "demo")
    _ensure_user(*ADMIN, is_admin=True)
    user, created = _ensure_user(*USER, is_admin=False)
    if created:
        for kind, amount in STARTING_MONEY.items():
            credit(wallet_of(user.id, kind).id, parse_usd(amount), memo="demo money")
    revoked = _revoke_demo_keys(user)
    issued = issue_key(user, name=DEMO_KEY_NAME)
    return [
        f"Waybill demo at {base_url}/   (simulated upstreams at {simulator_root})",
        f"  admin: {ADMIN[0]} / {ADMIN[1]}",
        f"  user:  {USER[0]} / {USER[1]} (credit ${STARTING_MONEY['credit']}, routed ${STARTING_MONEY['routed']} on first run)",
        f"  OpenAI base_url: {base_url}/v1",
        *([f"  revoked {revoked} API key(s) from earlier demo runs"] if revoked else []),
        f"  API key: {issued.secret}",
    ]
