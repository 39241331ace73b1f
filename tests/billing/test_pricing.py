"""Pricing math: integers only, rounded up once, monotonic in tokens, never negative; bounded parsing."""
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.billing.pricing import (MAX_AMOUNT_MICROS, MAX_PRICE_MULTIPLIER, MAX_PRICE_PER_MTOK_MICROS, Price, Usage,
                                 charge_micros, format_usd, parse_multiplier, parse_usd)

tokens = st.integers(min_value=0, max_value=10_000_000)
prices = st.builds(Price, st.integers(0, 200_000_000), st.integers(0, 200_000_000), st.integers(0, 200_000_000))
multipliers = st.fractions(min_value=0, max_value=10, max_denominator=10_000)


@st.composite
def usages(draw):
    prompt = draw(tokens)
    return Usage(prompt, draw(tokens), draw(st.integers(0, prompt)))


@given(usages(), prices, multipliers)
def test_charge_is_a_non_negative_integer_rounded_up_once(usage, price, multiplier):
    charge = charge_micros(usage, price, multiplier)
    exact = ((usage.prompt_tokens - usage.cached_tokens) * price.input_per_mtok
             + usage.cached_tokens * price.cached_input_per_mtok
             + usage.completion_tokens * price.output_per_mtok) * multiplier / 1_000_000
    assert isinstance(charge, int)
    assert charge >= 0
    assert exact <= charge < exact + 1


@given(usages(), prices, multipliers, st.integers(0, 1000), st.integers(0, 1000))
def test_charge_is_monotonic_in_tokens(usage, price, multiplier, more_prompt, more_completion):
    bigger = Usage(usage.prompt_tokens + more_prompt, usage.completion_tokens + more_completion, usage.cached_tokens)
    assert charge_micros(bigger, price, multiplier) >= charge_micros(usage, price, multiplier)


def test_rounding_happens_once_per_request_not_per_part():
    # 1 input token and 1 output token at 0.4 µ$ each: per-part rounding would give 2 µ$.
    price = Price(400_000, 400_000, 400_000)
    assert charge_micros(Usage(1, 1), price) == 1


def test_routed_multiplier_stays_exact():
    price = Price(150_000, 600_000, 75_000)  # gpt-4o-mini
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    assert charge_micros(usage, price, parse_multiplier("1.1")) == 165_000
    assert charge_micros(Usage(3, 0), Price(1_000_000, 0, 0), Fraction(1, 3)) == 1


def test_cached_tokens_use_the_cached_price():
    price = Price(input_per_mtok=1_000_000, output_per_mtok=0, cached_input_per_mtok=100_000)
    assert charge_micros(Usage(prompt_tokens=1_000_000, completion_tokens=0, cached_tokens=1_000_000), price) == 100_000


def test_zero_usage_charges_zero_and_negative_usage_is_refused():
    assert charge_micros(Usage(0, 0), Price(5, 5, 5)) == 0
    with pytest.raises(ValueError):
        Usage(-1, 0)


@pytest.mark.parametrize("text,micros", [
    ("5", 5_000_000), ("0.000001", 1), ("12.34", 12_340_000), ("0", 0), (".5", 500_000), ("5.", 5_000_000),
    ("  5 ", 5_000_000), ("007.50", 7_500_000), ("1.2500000000", 1_250_000), ("1000000", MAX_AMOUNT_MICROS),
    (0.15, 150_000), (1e-06, 1), (3, 3_000_000),
])
def test_parse_usd(text, micros):
    assert parse_usd(text) == micros


@pytest.mark.parametrize("text", [
    "abc", "0.0000001", "nan", "inf", "", " ", ".", "1_000", "\u0665", "\uff15", "1e3", "0x10", "1,5", "1.2.3",
    "5 5", "+5", "-1", "-0", "\u00a05", "9223372036854.775807", "1000000.000001", "1" * 5000,
    True, None, [5], float("nan"), float("inf"), -0.5, 10 ** 30, Decimal("1E+999999"),
])
def test_parse_usd_refuses_malformed_amounts(text):
    with pytest.raises(ValueError):
        parse_usd(text)


def test_price_maximum_is_its_own():
    assert parse_usd("10000", maximum=MAX_PRICE_PER_MTOK_MICROS) == MAX_PRICE_PER_MTOK_MICROS
    with pytest.raises(ValueError, match="maximum of \\$10,000"):
        parse_usd("10000.000001", maximum=MAX_PRICE_PER_MTOK_MICROS)


number_like = st.from_regex(r"[ 0-9._eE+\-,\u0665]{0,24}", fullmatch=True)


@given(st.one_of(st.text(), number_like, st.floats(), st.integers(), st.decimals(), st.booleans(), st.none()))
def test_parse_usd_returns_bounded_micros_or_refuses(value):
    try:
        micros = parse_usd(value)
    except ValueError:
        return
    assert type(micros) is int
    assert 0 <= micros <= MAX_AMOUNT_MICROS


@given(st.integers(0, MAX_AMOUNT_MICROS))
def test_formatted_amounts_read_back_exactly(micros):
    assert parse_usd(format_usd(micros)) == micros


@pytest.mark.parametrize("value", ["0", 0, -1, 100.000001, 1e6, "inf", float("nan"), "1_0", 0.3333333, True])
def test_parse_multiplier_refuses_out_of_bounds(value):
    with pytest.raises(ValueError):
        parse_multiplier(value)


@given(st.one_of(st.text(), number_like, st.floats(), st.integers(), st.decimals()))
def test_parse_multiplier_returns_a_bounded_fraction_or_refuses(value):
    try:
        multiplier = parse_multiplier(value)
    except ValueError:
        return
    assert isinstance(multiplier, Fraction)
    assert 0 < multiplier <= MAX_PRICE_MULTIPLIER
    assert (multiplier * 1_000_000).denominator == 1


def test_format_usd():
    assert format_usd(1_234_567) == "1.234567"
    assert format_usd(-5) == "-0.000005"
