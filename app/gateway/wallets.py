"""What /v1/wallets shows: both balances with reserved and available amounts."""
from __future__ import annotations

from app.billing.pricing import format_usd
from app.billing.wallets import wallets_of


def wallets_json(user_id: int) -> list[dict]:
    """Both wallets, in USD strings and integer micro-USD."""
    return [{"wallet": kind, "balance_usd": format_usd(w.balance), "reserved_usd": format_usd(w.reserved),
             "available_usd": format_usd(w.available), "balance_micros": w.balance,
             "reserved_micros": w.reserved, "available_micros": w.available}
            for kind, w in sorted(wallets_of(user_id).items())]
