"""Pricing math: integer micro-USD, exact multipliers, one rounding up per request."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per 1M tokens
# Far above any real payment or price, far below what overflows a 64-bit balance or bills absurdly.
MAX_AMOUNT_MICROS = 1_000_000 * MICROS_PER_USD  # one top-up, spend cap or code: $1,000,000
MAX_PRICE_PER_MTOK_MICROS = 10_000 * MICROS_PER_USD  # one official price: $10,000 per 1M tokens
MAX_PRICE_MULTIPLIER = 100
ONE_MICRO = Decimal("0.000001")
PLAIN_DECIMAL = re.compile(r"(?=\.?[0-9])[0-9]*\.?[0-9]*")


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


def plain_number(value: object, kind: str = "an amount") -> Decimal:
    """A finite, unsigned number from an int, float or Decimal, or from text of ASCII digits and at most one '.'."""
    if isinstance(value, str):
        text = value.strip(" \t\r\n")
        # Decimal() alone would also read '1_000', '1e3', '+5' and non-ASCII digits such as '٥'.
        if not PLAIN_DECIMAL.fullmatch(text.removeprefix("-")):
            raise ValueError(f"not {kind}: {value!r} (use digits with an optional '.', like 12.50)")
        number = Decimal(text)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest decimal that reads back as this float, not its binary expansion
    else:
        raise ValueError(f"not {kind}: {value!r}")
    if not number.is_finite():
        raise ValueError(f"not {kind}: {value!r}")
    if number.is_signed():
        raise ValueError(f"{kind} cannot be negative, got {value!r}")
    return number


def parse_usd(value: str | float | int | Decimal, maximum: int = MAX_AMOUNT_MICROS, kind: str = "an amount") -> int:
    """Parse a USD amount into micro-USD from 0 to `maximum`, refusing anything finer than a micro-dollar."""
    number = plain_number(value, kind)
    if number > Decimal(maximum) / MICROS_PER_USD:
        raise ValueError(f"{value!r} is more than the maximum of {usd_limit(maximum)}")
    if number != number.quantize(ONE_MICRO):
        raise ValueError(f"{value!r} has more precision than one micro-USD")
    return int(number * MICROS_PER_USD)


def format_usd(micros: int, places: int = 6) -> str:
    """Render micro-USD as a USD string with a fixed number of places."""
    return f"{Decimal(micros) / MICROS_PER_USD:.{places}f}"


def usd_limit(micros: int) -> str:
    """A limit in whole USD with thousands separators, as error messages name it: $1,000,000."""
    return f"${Decimal(micros) / MICROS_PER_USD:,}"


def parse_multiplier(value: str | float | int | Decimal) -> Fraction:
    """Parse a price multiplier exactly; 1.15 means 115% of the official price."""
    number = plain_number(value, "a multiplier")
    if not 0 < number <= MAX_PRICE_MULTIPLIER:
        raise ValueError(f"multiplier must be above 0 and at most {MAX_PRICE_MULTIPLIER}, got {value!r}")
    if number != number.quantize(ONE_MICRO):
        raise ValueError(f"multiplier has more than 6 decimals: {value!r}")
    return Fraction(number)


def usd_text(micros: int | None) -> str:
    """Micro-USD as dollars, sign first, exact: -$0.000263, $12.50, $1,234.567891."""
    if micros is None:
        return "—"
    dollars = Decimal(abs(micros)) / MICROS_PER_USD
    # Cents at least, micro-dollars at most: nothing is rounded away, and no trailing zeros past the cents.
    places = max(2, -dollars.normalize().as_tuple().exponent) if dollars else 2
    return f"{'-' if micros < 0 else ''}${dollars:,.{places}f}"
