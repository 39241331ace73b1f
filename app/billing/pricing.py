"""Pricing math: integer micro-USD, exact multipliers, one rounding up per request."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per 1M tokens


@dataclass(frozen=True)
class Price:
    """Micro-USD per 1M tokens for input, output and cached input."""

    input_per_mtok: int
    output_per_mtok: int
    cached_input_per_mtok: int


@dataclass(frozen=True)
class Usage:
    """Tokens one request used; cached tokens are the part of the prompt served from cache."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    def __post_init__(self) -> None:
        if min(self.prompt_tokens, self.completion_tokens, self.cached_tokens) < 0:
            raise ValueError("token counts cannot be negative")


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding up, for non-negative operands."""
    return -(-numerator // denominator)


def charge_micros(usage: Usage, price: Price, multiplier: Fraction = Fraction(1)) -> int:
    """The charge in micro-USD: exact sum of tokens times applied prices, rounded up once.

    Cached tokens are billed at the cached price and the rest of the prompt at the input price.
    """
    if multiplier < 0:
        raise ValueError("multiplier cannot be negative")
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    exact = (
        uncached * price.input_per_mtok
        + usage.cached_tokens * price.cached_input_per_mtok
        + usage.completion_tokens * price.output_per_mtok
    ) * multiplier
    return ceil_div(exact.numerator, exact.denominator * TOKENS_PER_PRICE_UNIT)


def parse_usd(text: str | float | int | Decimal) -> int:
    """Parse a USD amount into micro-USD, refusing anything finer than a micro-dollar."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{text} has more precision than one micro-USD")
    return int(micros)


def format_usd(micros: int, places: int = 6) -> str:
    """Render micro-USD as a USD string with a fixed number of places."""
    return f"{Decimal(micros) / MICROS_PER_USD:.{places}f}"


def parse_multiplier(text: str | float | Decimal) -> Fraction:
    """Parse a price multiplier exactly; 1.15 means 115% of the official price."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not a multiplier: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"multiplier must be a number >= 0, got {text!r}")
    return Fraction(value)
