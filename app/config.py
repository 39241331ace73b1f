"""Defaults and WAYBILL_* environment variables."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

ENV_PREFIX = "WAYBILL_"


def _read_or_create(path: Path, make) -> str:
    """Return the text stored at path, creating it first with make() when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def load_config(instance_path: str) -> dict:
    """Build the app config from the environment, generating local secrets on first run."""
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    secret_key = env.get(f"{ENV_PREFIX}SECRET_KEY") or _read_or_create(
        instance / "secret_key", lambda: secrets.token_urlsafe(48)
    )
    encryption_keys = env.get(f"{ENV_PREFIX}ENCRYPTION_KEYS") or _read_or_create(
        instance / "encryption_keys", lambda: Fernet.generate_key().decode()
    )
    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": env.get(f"{ENV_PREFIX}DATABASE_URL")
        or f"sqlite:///{instance / 'waybill.db'}",
        "WAYBILL_ENCRYPTION_KEYS": [k.strip() for k in encryption_keys.split(",") if k.strip()],
        # Seconds a SQLite writer waits for the lock before failing; generous because
        # every write takes the lock up front and holds it only briefly.
        "WAYBILL_SQLITE_BUSY_TIMEOUT_S": float(env.get(f"{ENV_PREFIX}SQLITE_BUSY_TIMEOUT_S", "30")),
        # A hold not settled by then is stale and `waybill sweep` resolves it.
        "WAYBILL_HOLD_TTL_S": int(env.get(f"{ENV_PREFIX}HOLD_TTL_S", "900")),
        "MAX_CONTENT_LENGTH": int(env.get(f"{ENV_PREFIX}MAX_BODY_BYTES", str(4 * 1024 * 1024))),
        "WTF_CSRF_TIME_LIMIT": None,
    }


def engine_options(database_url: str) -> dict:
    """Pool settings for a database URL: a file database needs no liveness ping per checkout."""
    return {} if database_url.startswith("sqlite") else {"pool_pre_ping": True}
