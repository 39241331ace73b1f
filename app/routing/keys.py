"""Upstream keys: encrypted at rest with MultiFernet, write-only, resolved at request time."""
from __future__ import annotations

import os

from cryptography.fernet import Fernet, MultiFernet
from flask import current_app

from app.routing.models import Channel


def _fernet() -> MultiFernet:
    """The key ring from config; the first key encrypts, all of them decrypt."""
    return MultiFernet([Fernet(k.encode()) for k in current_app.config["WAYBILL_ENCRYPTION_KEYS"]])


def store_key(channel: Channel, api_key: str) -> None:
    """Encrypt and store a channel's key, keeping only its last four characters in clear."""
    channel.api_key_encrypted = _fernet().encrypt(api_key.encode())
    channel.api_key_last4 = api_key[-4:]


def resolve_key(channel: Channel) -> str | None:
    """The key to send upstream: the stored one, else the named environment variable."""
    if channel.api_key_encrypted is not None:
        return _fernet().decrypt(channel.api_key_encrypted).decode()
    if channel.api_key_env:
        return os.environ.get(channel.api_key_env) or None
    return None
