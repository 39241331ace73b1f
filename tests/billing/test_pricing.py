"""Pricing math: integers only, rounded up once, monotonic in tokens, never negative."""
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.billing.pricing import Price, Usage, charge_micros, format_usd, parse_multiplier, parse_usd

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


@pytest.mark.parametrize("text,micros", [("5", 5_000_000), ("0.000001", 1), ("12.34", 12_340_000), ("-1", -1_000_000)])
def test_parse_usd(text, micros):
    assert parse_usd(text) == micros


@pytest.mark.parametrize("text", ["abc", "0.0000001", "nan", "inf", ""])
def test_parse_usd_refuses_malformed_amounts(text):
    with pytest.raises(ValueError):
        parse_usd(text)


def test_format_usd():
    assert format_usd(1_234_567) == "1.234567"
    assert format_usd(-5) == "-0.000005"
