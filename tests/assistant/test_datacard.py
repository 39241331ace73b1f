"""Pasted data: text or CSV, a price series' data card checked against figures computed here, bad input refused."""
from __future__ import annotations

import math
import statistics
import time
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.assistant.datacard import (
    CHART_POINTS, MAX_DATA_CHARS, Attachment, DataError, LineChart, context_text, read_attachment,
)

START = date(2024, 1, 1)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def price_csv(prices: list[float], gap_days: int = 1, header: str = "Date,Close", delimiter: str = ",") -> str:
    """A CSV of prices on dates gap_days apart from START, oldest first."""
    lines = [header] + [f"{START + timedelta(days=i * gap_days)}{delimiter}{price!r}" for i, price in enumerate(prices)]
    return "\n".join(lines) + "\n"


def prices_from(first: float, returns: list[float]) -> list[float]:
    """A price series that moves by the given simple returns."""
    prices = [first]
    for simple_return in returns:
        prices.append(prices[-1] * (1 + simple_return))
    return prices


def plotted(chart: LineChart) -> list[tuple[float, float]]:
    """The chart's polyline as (x, y) pairs."""
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in chart.points.split())]


def error_of(text: str) -> str:
    """The message read_attachment refuses text with."""
    with pytest.raises(DataError) as refused:
        read_attachment(text)
    return str(refused.value)


def test_known_returns_give_the_exact_return_drawdown_and_volatility():
    returns = [0.10, -0.20, 0.05, -0.10, 0.30]
    attachment = read_attachment(price_csv(prices_from(100.0, returns)))
    card = attachment.card
    assert (attachment.kind, attachment.rows, attachment.note) == ("prices", 6, None)
    assert (card.date_column, card.price_column, card.points) == ("Date", "Close", 6)
    assert (card.first_date, card.last_date) == (START, START + timedelta(days=5))
    assert card.first_price == 100.0
    assert card.total_return == pytest.approx(1.10 * 0.80 * 1.05 * 0.90 * 1.30 - 1)
    # The peak is after the first rise (day 1); the next three moves take it to the trough (day 4).
    assert card.max_drawdown == pytest.approx(0.80 * 1.05 * 0.90 - 1)
    assert (card.drawdown_peak, card.drawdown_trough) == (START + timedelta(days=1), START + timedelta(days=4))
    assert card.periods_per_year == 252
    expected = statistics.stdev([math.log(1 + r) for r in returns]) * math.sqrt(252)
    assert card.annualised_volatility == pytest.approx(expected)


def test_a_series_that_never_fell_has_no_drawdown_and_two_prices_no_volatility():
    card = read_attachment(price_csv([10.0, 12.5])).card
    assert card.total_return == pytest.approx(0.25)
    assert card.max_drawdown == 0.0 and card.drawdown_peak == card.drawdown_trough == START
    assert card.annualised_volatility is None


@pytest.mark.parametrize(("gap_days", "periods", "called"), [
    (1, 252, "daily"), (4, 252, "daily"), (7, 52, "weekly"), (31, 12, "monthly"), (91, 4, "quarterly"),
    (365, 1, "yearly"),
])
def test_the_gap_between_dates_sets_the_periods_a_year(gap_days, periods, called):
    returns = [0.02, -0.01, 0.03, -0.04]
    card = read_attachment(price_csv(prices_from(50.0, returns), gap_days=gap_days)).card
    assert (card.periods_per_year, card.return_period) == (periods, called)
    expected = statistics.stdev([math.log(1 + r) for r in returns]) * math.sqrt(periods)
    assert card.annualised_volatility == pytest.approx(expected)


def test_business_days_with_weekends_between_are_daily():
    days = [START + timedelta(days=i) for i in range(30) if (START + timedelta(days=i)).weekday() < 5]
    text = "Date,Close\n" + "".join(f"{day},{100 + i}\n" for i, day in enumerate(days))
    assert read_attachment(text).card.periods_per_year == 252


def test_newest_first_exports_are_sorted_by_date():
    prices = prices_from(100.0, [0.1, -0.3, 0.2, 0.05])
    oldest_first = price_csv(prices)
    header, *rows = oldest_first.splitlines()
    newest_first = "\n".join([header, *reversed(rows)])
    card = read_attachment(newest_first).card
    assert card == read_attachment(oldest_first).card
    assert (card.first_date, card.first_price, card.last_price) == (START, prices[0], prices[-1])


def test_the_adjusted_close_is_preferred_over_the_close_and_other_numbers():
    text = ("Date,Open,Close,Adj Close,Volume\n"
            "2024-01-02,10,11,5.5,1000\n"
            "2024-01-03,11,12,6.0,2000\n")
    card = read_attachment(text).card
    assert (card.price_column, card.first_price, card.last_price) == ("Adj Close", 5.5, 6.0)


def test_without_named_columns_the_first_column_of_dates_and_of_positive_numbers_are_used():
    text = ("Change,When,Level\n"
            "-1.5,2024-01-02,40\n"
            "2.0,2024-01-03,42\n")
    card = read_attachment(text).card
    assert (card.date_column, card.price_column, card.first_price, card.last_price) == ("When", "Level", 40, 42)


def test_dollar_signs_thousands_separators_and_datetimes_are_read():
    tabbed = "timestamp\tprice\n2024-01-02T00:00:00Z\t$1,234.50\n2024-01-03 16:00\t$1,300.00\n"
    card = read_attachment(tabbed).card
    assert (card.first_date, card.last_date) == (date(2024, 1, 2), date(2024, 1, 3))
    assert (card.first_price, card.last_price) == (1234.5, 1300.0)
    semicolons = "Date;Close\n2024/01/02;2,000\n2024/01/03;2,100.5\n"
    assert read_attachment(semicolons).card.last_price == 2100.5
    nasdaq = "Date,Close/Last,Volume\n2024-01-03,$184.25,58414460\n2024-01-02,$185.64,82488670\n"
    card = read_attachment(nasdaq).card
    assert (card.price_column, card.first_price, card.last_price) == ("Close/Last", 185.64, 184.25)


def test_an_empty_or_blank_paste_is_no_attachment():
    assert read_attachment("") == Attachment("text", 0, 0, None, None)
    assert read_attachment("  \n\t\n") == Attachment("text", 0, 0, None, None)
    assert context_text(read_attachment("  \n"), "  \n") == ""


def test_too_much_data_is_refused_with_both_sizes():
    message = error_of("x" * 25_312)
    assert message.startswith("The pasted data has 25,312 characters; the most is 20,000.")
    assert read_attachment("x" * MAX_DATA_CHARS).chars == MAX_DATA_CHARS


def test_line_breaks_count_once_as_the_page_counts_them():
    text = "ab\r\n" * 6000  # 24,000 characters as sent by a browser, 18,000 as typed
    assert read_attachment(text).chars == 18_000


@pytest.mark.parametrize("prose", [
    "Apples, pears and plums, all in one line, with commas.",
    "I looked at the numbers, and they were fine.\n"
    "Then, after a while, the market fell, hard, and we sold.\n"
    "Nothing else happened, really.\n",
    "Date,The closing price of the fund in euros after all fees\n2024-01-02,1\n2024-01-03,2\n",
    "one column\nonly\n",
])
def test_prose_and_single_columns_stay_text(prose):
    attachment = read_attachment(prose)
    assert (attachment.kind, attachment.rows, attachment.card) == ("text", 0, None)
    assert attachment.chars == len(prose)


def test_a_ragged_row_is_refused_naming_its_line():
    text = "Date,Close\n2024-01-02,1\n2024-01-03,2\n2024-01-04,3\n2024-01-05,4,5\n"
    assert error_of(text) == "Line 5 has 3 fields; the header has 2. Fix the row or paste it as plain text."


def test_blank_lines_are_skipped_but_counted_in_line_numbers():
    text = "Date,Close\n\n2024-01-02,1\n2024-01-03,2\n\n2024-01-04\n"
    assert error_of(text).startswith("Line 6 has 1 field; the header has 2.")
    assert read_attachment("Date,Close\n\n2024-01-02,1\n\n2024-01-03,2\n\n").rows == 2


def test_a_quote_left_open_is_named_with_the_lines_it_swallows():
    text = 'Date,Close\n2024-01-02,1\n2024-01-03,2\n"2024-01-04,3\n2024-01-05,4\n'
    assert error_of(text).startswith(
        "Line 4 has 1 field; the header has 2 (a quoted field runs from line 4 to line 5).")


@pytest.mark.parametrize(("text", "missing"), [
    ("Name,Price\nApple,1.5\nPear,2\n", "no data card: no column of dates like 2024-01-02"),
    ("Date,Event\n2024-01-02,launch\n2024-01-03,review\n", "no data card: no column of numbers"),
    ("Date,PnL\n2024-01-02,-5\n2024-01-03,3\n", "no data card: the PnL column has values at or below zero"),
    ("Date,Close\n2024-01-02,1\n", "no data card: a price series needs at least 2 rows"),
    ("Date,Close\n2024-01-02,1\n01/03/2024,2\n2024-01-04,3\n", "no data card: line 3 has '01/03/2024' in the Date"),
])
def test_a_csv_that_is_not_a_price_series_gets_a_note_saying_why(text, missing):
    attachment = read_attachment(text)
    assert (attachment.kind, attachment.card) == ("csv", None)
    assert attachment.rows == len(text.strip().splitlines()) - 1
    assert attachment.note.startswith(missing)


def test_a_date_twice_is_refused_naming_the_date_and_its_lines():
    message = error_of("Date,Close\n2024-01-02,1\n2024-01-03,2\n2024-01-02T16:00,3\n")
    assert message.startswith("The date 2024-01-02 appears on line 2 and line 4;")


@pytest.mark.parametrize(("bad", "said"), [
    ("n/a", "Line 3 has 'n/a' in the Close column, not a number."),
    ("", "Line 3 has nothing in the Close column, not a number."),
    ("0", "Line 3 has 0 in the Close column; prices must be above zero."),
    ("-2.5", "Line 3 has -2.5 in the Close column; prices must be above zero."),
])
def test_a_bad_price_is_refused_naming_its_line(bad, said):
    assert error_of(f"Date,Close\n2024-01-02,1\n2024-01-03,{bad}\n2024-01-04,3\n").startswith(said)


def test_the_chart_spans_the_plot_from_the_lowest_to_the_highest_price_and_spaces_dates_truly():
    text = "Date,Close\n2024-01-01,20\n2024-01-02,10\n2024-01-11,30\n"
    chart = read_attachment(text).card.chart
    assert (chart.low, chart.high) == (10, 30)
    (x0, y0), (x1, y1), (x2, y2) = plotted(chart)
    assert (x0, x2) == (chart.left, chart.right)
    assert x1 == pytest.approx(chart.left + (chart.right - chart.left) / 10, abs=0.05)
    assert (y1, y2) == (chart.bottom, chart.top)
    assert y0 == pytest.approx((chart.top + chart.bottom) / 2, abs=0.05)
    assert 0 <= chart.left < chart.right <= chart.width and 0 <= chart.top < chart.bottom <= chart.height


def test_a_flat_series_draws_a_flat_line_through_the_middle():
    chart = read_attachment(price_csv([7.25] * 5)).card.chart
    assert chart.low == chart.high == 7.25
    assert {y for _, y in plotted(chart)} == {round((chart.top + chart.bottom) / 2, 1)}


def test_a_long_series_is_downsampled_keeping_its_ends():
    prices = [100 + (i % 17) for i in range(900)]
    card = read_attachment(price_csv(prices)).card
    points = plotted(card.chart)
    assert card.points == 900 and len(points) <= CHART_POINTS
    assert len(points) >= CHART_POINTS * 0.9  # thinned, not thrown away
    assert points[0][0] == card.chart.left and points[-1][0] == card.chart.right
    assert all(a[0] < b[0] for a, b in zip(points, points[1:]))


def test_the_context_gives_the_card_first_then_the_data_fenced():
    text = price_csv([100.0, 110.0, 99.0])
    attachment = read_attachment(text)
    volatility = statistics.stdev([math.log(1.1), math.log(99 / 110)]) * math.sqrt(252)
    assert context_text(attachment, text) == "\n".join([
        "Data card (computed by Waybill from the pasted CSV, 3 rows, column Close by Date):",
        "- Period: 2024-01-01 to 2024-01-03",
        "- Prices: 100 first, 99 last",
        "- Return: -1.00%",
        f"- Annualised volatility: {volatility * 100:.2f}% (daily returns, 252 periods a year)",
        "- Max drawdown: -10.00% (peak 2024-01-02, trough 2024-01-03)",
        "",
        "Pasted data:",
        "```csv",
        text.rstrip("\n"),
        "```",
    ])


def test_the_context_of_text_or_plain_csv_names_its_kind_and_size_and_fences_it_safely():
    prose = "See ```this``` and ````that````, then decide.\n"
    context = context_text(read_attachment(prose), prose)
    assert context == f"Pasted data (text, {len(prose)} characters):\n`````text\n{prose.rstrip()}\n`````"
    table = "Name,Price\nApple,1.5\nPear,2\n"
    context = context_text(read_attachment(table), table)
    assert context == f"Pasted data (CSV, 2 rows, {len(table)} characters):\n```csv\n{table.rstrip()}\n```"


@pytest.mark.parametrize("shape", ["prices", "empty cells", "one long line", "an open quote"])
def test_the_largest_paste_is_read_quickly(shape):
    if shape == "prices":
        rows = [f"{START + timedelta(days=i)},{100 + (i % 50) / 7:.4f}" for i in range(MAX_DATA_CHARS // 20)]
        text = "Date,Close\n" + "\n".join(rows)
    else:
        unit = {"empty cells": ",\n", "one long line": "a,", "an open quote": 'x,"y\n'}[shape]
        text = unit * (MAX_DATA_CHARS // len(unit))
    text = text[:MAX_DATA_CHARS]
    started = time.perf_counter()
    try:
        read_attachment(text)
    except DataError:
        pass
    assert time.perf_counter() - started < 2.0


def check_attachment(attachment: Attachment, text: str) -> None:
    """What must hold of any attachment read_attachment returns."""
    assert attachment.kind in ("text", "csv", "prices")
    assert isinstance(context_text(attachment, text), str)
    card = attachment.card
    if attachment.kind != "prices":
        assert card is None
        return
    assert card.points == attachment.rows >= 2 and card.first_date < card.last_date
    assert card.first_price > 0 and card.last_price > 0 and math.isfinite(card.total_return)
    assert -1 <= card.max_drawdown <= 0 and card.drawdown_peak <= card.drawdown_trough
    assert (card.annualised_volatility is None) == (card.points < 3)
    points = plotted(card.chart)
    assert 2 <= len(points) <= CHART_POINTS
    chart = card.chart
    assert all(chart.left <= x <= chart.right and chart.top <= y <= chart.bottom for x, y in points)


CSV_PIECES = st.sampled_from([
    ",", ";", "\t", "\n", "\r\n", "\r", " ", '"', "'", "$", ".", "-", "+", "/", ":", "e", "T", "Z", "0", "1", "9",
    "2024-01-02", "2024-02-30", "1999/12/31", "Date", "Close", "price", "1,234.50", "nan", "inf", "1e999",
    "```", "\x00", "é", "١٢",
])


@FUZZ
@given(st.one_of(st.lists(CSV_PIECES, max_size=120).map("".join), st.text(max_size=400)))
def test_any_paste_is_an_attachment_or_a_data_error(text):
    try:
        attachment = read_attachment(text)
    except DataError as error:
        assert str(error)
        return
    check_attachment(attachment, text)


PRICE_TEXT = st.one_of(
    st.floats(min_value=0, exclude_min=True, allow_infinity=False).map(repr),  # any price, 5e-324 to 1.8e308
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10, 10**400).map(str),
    st.sampled_from(["", "n/a", "$1,234.5", "0", "-1", "1e-320", "5e-324", "1e308", "0.0", '"1,5"']),
)


@FUZZ
@given(rows=st.lists(st.tuples(st.dates(date(1900, 1, 1), date(2100, 12, 31)), PRICE_TEXT), max_size=30),
       delimiter=st.sampled_from([",", ";", "\t"]), descending=st.booleans())
def test_any_series_of_dates_and_price_texts_is_summarised_or_refused(rows, delimiter, descending):
    rows = sorted(rows, reverse=descending)
    text = f"Date{delimiter}Close\n" + "".join(f"{day}{delimiter}{price}\n" for day, price in rows)
    try:
        attachment = read_attachment(text)
    except DataError as error:
        assert str(error)
        return
    check_attachment(attachment, text)


@FUZZ
@given(st.dictionaries(st.dates(date(1900, 1, 1), date(2100, 12, 31)),
                       st.floats(min_value=0.01, max_value=1e6), min_size=2, max_size=30))
def test_every_valid_series_gets_the_figures_computed_the_long_way(series):
    text = "Date,Close\n" + "".join(f"{day},{price!r}\n" for day, price in series.items())
    card = read_attachment(text).card
    ordered = [series[day] for day in sorted(series)]
    assert (card.first_date, card.last_date) == (min(series), max(series))
    assert card.total_return == pytest.approx(ordered[-1] / ordered[0] - 1)
    worst_fall = min(later / earlier - 1 for i, earlier in enumerate(ordered) for later in ordered[i:])
    assert card.max_drawdown == pytest.approx(worst_fall)
    if len(ordered) >= 3:
        log_returns = [math.log(later / earlier) for earlier, later in zip(ordered, ordered[1:])]
        expected = statistics.stdev(log_returns) * math.sqrt(card.periods_per_year)
        assert card.annualised_volatility == pytest.approx(expected, abs=1e-9)
