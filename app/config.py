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
        # A /v1 body not all arrived this many seconds after its reading began answers 408 (slow clients).
        "WAYBILL_BODY_READ_TIMEOUT_S": float(env.get(f"{ENV_PREFIX}BODY_READ_TIMEOUT_S", "30")),
        # Requests one key may have in flight at once, per worker process; more answer 429 with Retry-After: 1.
        "WAYBILL_MAX_IN_FLIGHT_PER_KEY": int(env.get(f"{ENV_PREFIX}MAX_IN_FLIGHT_PER_KEY", "32")),
        # A form's CSRF token expires after this many seconds (the "Form expired" page); 8 hours by default.
        "WTF_CSRF_TIME_LIMIT": int(env.get(f"{ENV_PREFIX}CSRF_TIME_LIMIT_S", str(8 * 3600))),
        # Session cookies: never readable from scripts, not sent on cross-site posts, Secure over HTTPS
        # (always, with WAYBILL_HTTPS_ONLY=1; app/security.py also marks them Secure on any HTTPS request).
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get(f"{ENV_PREFIX}HTTPS_ONLY", "0").strip().lower() in {"1", "true", "yes", "on"},
        # How many proxies in front set X-Forwarded-For/-Proto/-Host/-Port/-Prefix (0: trust none of them).
        "WAYBILL_PROXY_FIX": int(env.get(f"{ENV_PREFIX}PROXY_FIX", "0")),
        # Sign-in throttle: failed attempts allowed per account and per address within one window.
        "WAYBILL_LOGIN_WINDOW_S": int(env.get(f"{ENV_PREFIX}LOGIN_WINDOW_S", "900")),
        "WAYBILL_LOGIN_MAX_FAILURES_PER_ACCOUNT": int(env.get(f"{ENV_PREFIX}LOGIN_MAX_FAILURES_PER_ACCOUNT", "5")),
        "WAYBILL_LOGIN_MAX_FAILURES_PER_ADDRESS": int(env.get(f"{ENV_PREFIX}LOGIN_MAX_FAILURES_PER_ADDRESS", "20")),
    }


def engine_options(database_url: str) -> dict:
    """Pool settings for a database URL: a file database needs no liveness ping per checkout."""
    return {} if database_url.startswith("sqlite") else {"pool_pre_ping": True}
