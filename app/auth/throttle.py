"""Sign-in throttling per account and per address, counted in the database so every worker and node agrees."""
from __future__ import annotations

import hashlib
import ipaddress
from datetime import timedelta

from flask import current_app

from app.accounts.models import User
from app.accounts.service import authenticate, normalize_email
from app.accounts.throttle import Counter, Throttled, clear, count_attempt, take_back_one

ACCOUNT, ADDRESS = "account", "address"
LIMIT_SETTINGS = {ACCOUNT: "WAYBILL_LOGIN_MAX_FAILURES_PER_ACCOUNT", ADDRESS: "WAYBILL_LOGIN_MAX_FAILURES_PER_ADDRESS"}


class LoginThrottled(Throttled):
    """Too many failed sign-ins for an account or from an address; retry_after_s says when to try again."""

    def __init__(self, retry_after_s: int):
        super().__init__(retry_after_s, "Too many failed sign-ins for this account or from this address.")


def sign_in(email: str, password: str, address: str | None) -> User | None:
    """The user whose password matches; LoginThrottled, unchecked, when the account or address has no tries left."""
    subjects = {ACCOUNT: _digest(normalize_email(email)), ADDRESS: _digest(_address_block(address))}
    counters = [Counter(scope, subjects[scope], current_app.config[LIMIT_SETTINGS[scope]]) for scope in (ADDRESS, ACCOUNT)]
    try:
        count_attempt(counters, timedelta(seconds=current_app.config["WAYBILL_LOGIN_WINDOW_S"]))
    except Throttled as refused:
        raise LoginThrottled(refused.retry_after_s) from None
    user = authenticate(email, password)
    if user is not None:
        # Clearing the address too would let someone with an account of their own reset it between guesses.
        clear(ACCOUNT, subjects[ACCOUNT])
        take_back_one(ADDRESS, subjects[ADDRESS])
    return user


def _digest(text: str) -> str:
    """What the table keeps of an email or address: typed emails that match no account stay unreadable."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _address_block(address: str | None) -> str:
    """The address counted: an IPv4 address, or an IPv6 /64, which one host can hop across at will."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
