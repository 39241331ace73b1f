"""Data pasted into a conversation: plain text or CSV, and for a price series a data card the model can quote.

The model gets the figures (period, return, volatility, drawdown) computed here rather than doing the
arithmetic itself, and the page draws the card's line chart. Every way pasted data can be wrong ends in a
DataError whose message is fit to show the user; nothing else escapes read_attachment.
"""
from __future__ import annotations

import csv
import math
import re
import statistics
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, NamedTuple

MAX_DATA_CHARS = 20_000  # the most pasted data we accept (the page shows "x of 20,000 characters")
MAX_HEADER_FIELD_CHARS = 40  # a longer "column name" is a sentence, not a header
DELIMITERS = ("\t", ";", ",")  # on a tie the earlier wins: a tab almost never sits inside a field
SAMPLE_LINES = 10  # lines after the header that decide whether the paste is a table
DATE_HEADERS = frozenset({"date", "day", "time", "timestamp", "datetime"})
PRICE_HEADERS = ("adjclose", "close", "closelast", "price", "last", "value", "nav")  # best first, letters only
SHOWN_VALUE_CHARS = 40  # how much of a bad value an error message quotes

# (the largest median gap between dates in days, periods a year, what a period's return is called).
# Daily data skips weekends and holidays, so its gaps reach 4 days (Friday to Tuesday); a week is 7, a
# month 28 to 31, a quarter 90 to 92. Anything sparser is treated as yearly.
SAMPLING_BANDS = ((4, 252, "daily"), (10, 52, "weekly"), (45, 12, "monthly"), (135, 4, "quarterly"))
YEARLY = (1, "yearly")
RETURN_PERIOD_NAMES = {periods: name for _, periods, name in SAMPLING_BANDS} | {YEARLY[0]: YEARLY[1]}

# The chart's own coordinates (the viewBox); CSS scales it to its card.
CHART_WIDTH, CHART_HEIGHT = 320, 120
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 48, 312, 8, 104  # room on the left for a price, below for dates
CHART_POINTS = 200  # a polyline this long already draws more points than the card has pixels to spare

_DATE = re.compile(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})"
                   r"(?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?")
# ASCII digits only: float() also takes "nan", "1_000" and other scripts' digits, none of which a price export means.
_PLAIN_NUMBER = re.compile(r"[+-]?\$?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GROUPED_NUMBER = re.compile(r"[+-]?\$?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")


class DataError(ValueError):
    """Pasted data that cannot be read, with a message fit to show the user."""


@dataclass(frozen=True)
class LineChart:
    """An SVG line chart's geometry, in viewBox units (y grows downward); the template draws it."""

    points: str  # the polyline's "x,y x,y ...", one decimal each
    low: float  # the lowest price, drawn on the plot's bottom edge
    high: float  # the highest price, drawn on its top edge (both in the middle for a flat series)

    width: ClassVar[int] = CHART_WIDTH
    height: ClassVar[int] = CHART_HEIGHT
    left: ClassVar[int] = PLOT_LEFT
    right: ClassVar[int] = PLOT_RIGHT
    top: ClassVar[int] = PLOT_TOP
    bottom: ClassVar[int] = PLOT_BOTTOM


@dataclass(frozen=True)
class DataCard:
    """A price series summarised: the figures a model should not compute itself, and a chart."""

    date_column: str
    price_column: str
    first_date: date
    last_date: date
    points: int
    first_price: float
    last_price: float
    total_return: float  # last / first - 1
    annualised_volatility: float | None  # sample stdev of log returns * sqrt(periods_per_year); None under 3 prices
    periods_per_year: int  # from the median gap between dates, see SAMPLING_BANDS
    max_drawdown: float  # the worst fall from a running peak, as a fraction <= 0 (0.0 when prices never fell)
    drawdown_peak: date  # both the first date when prices never fell
    drawdown_trough: date
    chart: LineChart

    @property
    def return_period(self) -> str:
        """What one return of the series spans: "daily", "weekly", "monthly", "quarterly" or "yearly"."""
        return RETURN_PERIOD_NAMES[self.periods_per_year]


@dataclass(frozen=True)
class Attachment:
    """What pasted data became: its kind, size, and for a price series its data card."""

    kind: str  # "text", "csv" or "prices"
    chars: int  # characters as the page counts them (a line break is one); 0 when nothing but whitespace came
    rows: int  # data rows for csv and prices, 0 for text
    card: DataCard | None  # for kind == "prices"
    note: str | None  # why a CSV got no data card, e.g. "no data card: no column of dates"


class _Row(NamedTuple):
    """One data row and the line of the paste it starts on (1-based, counting blank lines)."""

    line: int
    fields: list[str]


@dataclass(frozen=True)
class _Table:
    """A CSV as read: its header and its non-blank data rows, each as long as the header."""

    header: list[str]
    rows: list[_Row]
    delimiter: str

    def column_name(self, index: int) -> str:
        """The header of a column, or a stand-in when that header is blank."""
        return self.header[index].strip() or f"column {index + 1}"


class _NotAPriceSeries(Exception):
    """A readable CSV that is not a price series, and the reason shown with it."""


def read_attachment(text: str) -> Attachment:
    """Classify pasted data and, for a price series, summarise it; DataError with a clear message when it cannot."""
    # Browsers send a textarea's line breaks as CRLF but count them as one character.
    pasted = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(pasted) > MAX_DATA_CHARS:
        raise DataError(f"The pasted data has {len(pasted):,} characters; the most is {MAX_DATA_CHARS:,}. "
                        "Paste a shorter extract, such as fewer rows.")
    if not pasted.strip():
        return Attachment("text", 0, 0, None, None)
    lines = pasted.removesuffix("\n").split("\n")  # a final line break ends the last line, it starts none
    delimiter = _table_delimiter(lines)
    if delimiter is None:
        return Attachment("text", len(pasted), 0, None, None)
    table = _read_table(lines, delimiter)
    try:
        card = _data_card(table)
    except _NotAPriceSeries as reason:
        return Attachment("csv", len(pasted), len(table.rows), None, f"no data card: {reason}")
    return Attachment("prices", len(pasted), len(table.rows), card, None)


def context_text(attachment: Attachment, text: str) -> str:
    """The attachment as the model should read it: the data card's figures first (when there is one), then the data."""
    if attachment.chars == 0:
        return ""
    data = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    # A fence longer than any run of backticks in the data, so pasted Markdown cannot close it early.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", data)), default=0))
    if attachment.kind == "text":
        return f"Pasted data (text, {attachment.chars:,} characters):\n{fence}text\n{data}\n{fence}"
    fenced = f"{fence}csv\n{data}\n{fence}"
    if attachment.card is None:
        return f"Pasted data (CSV, {attachment.rows:,} rows, {attachment.chars:,} characters):\n{fenced}"
    return f"{_card_text(attachment.card, attachment.rows)}\n\nPasted data:\n{fenced}"


def _card_text(card: DataCard, rows: int) -> str:
    """The data card's figures as lines a model can quote."""
    if card.annualised_volatility is None:
        volatility = "not computed (it needs at least 3 prices)"
    else:
        volatility = (f"{card.annualised_volatility:.2%} ({card.return_period} returns, "
                      f"{card.periods_per_year} periods a year)")
    if card.max_drawdown < 0:
        drawdown = f"{card.max_drawdown:.2%} (peak {card.drawdown_peak}, trough {card.drawdown_trough})"
    else:
        drawdown = "0.00% (prices never fell)"
    return "\n".join([
        f"Data card (computed by Waybill from the pasted CSV, {rows:,} rows, "
        f"column {card.price_column} by {card.date_column}):",
        f"- Period: {card.first_date} to {card.last_date}",
        f"- Prices: {card.first_price:,.10g} first, {card.last_price:,.10g} last",
        f"- Return: {card.total_return:+.2%}",
        f"- Annualised volatility: {volatility}",
        f"- Max drawdown: {drawdown}",
    ])


def _split_line(line: str, delimiter: str) -> list[str]:
    """One physical line's fields (a quote left open swallows the rest of the line)."""
    return next(csv.reader([line], delimiter=delimiter), [])


def _table_delimiter(lines: list[str]) -> str | None:
    """The delimiter that makes the paste a table, or None for prose.

    A table's header splits into at least two short fields, and the line after it and at least half of the
    next few split into as many; a paragraph with commas rarely does, its lines carrying different numbers
    of them. (A table whose first row is ragged is therefore read as prose, which still reaches the model.)
    """
    filled = [line for line in lines if line.strip()]
    if len(filled) < 2:
        return None
    header, sample = filled[0], filled[1:1 + SAMPLE_LINES]
    best: tuple[int, str] | None = None
    for delimiter in DELIMITERS:
        fields = _split_line(header, delimiter)
        if len(fields) < 2 or any(len(field.strip()) > MAX_HEADER_FIELD_CHARS for field in fields):
            continue
        agreeing = [len(_split_line(line, delimiter)) == len(fields) for line in sample]
        if not (agreeing[0] and 2 * sum(agreeing) >= len(agreeing)):
            continue
        if best is None or sum(agreeing) > best[0]:
            best = (sum(agreeing), delimiter)
    return best[1] if best else None


def _read_table(lines: list[str], delimiter: str) -> _Table:
    """Read every row, skipping blank lines; DataError naming the first row whose field count is not the header's."""
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[_Row] = []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # only malformed input the reader refuses even when lenient
            raise DataError(f"Line {start} cannot be read as CSV ({error}). "
                            "Fix the row or paste it as plain text.") from None
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if header is None:
            header = fields
        elif len(fields) != len(header):
            spans = (f" (a quoted field runs from line {start} to line {reader.line_num})"
                     if reader.line_num > start else "")
            raise DataError(f"Line {start} has {_count(len(fields), 'field')}; the header has {len(header)}{spans}. "
                            "Fix the row or paste it as plain text.")
        else:
            rows.append(_Row(start, fields))
    assert header is not None  # _table_delimiter saw a header line
    return _Table(header, rows, delimiter)


def _count(number: int, noun: str) -> str:
    """A count and its noun, plural unless the count is one."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _data_card(table: _Table) -> DataCard:
    """Summarise a table as a price series: _NotAPriceSeries when it is not one, DataError on a bad row of one."""
    if len(table.rows) < 2:
        raise _NotAPriceSeries("a price series needs at least 2 rows")
    date_index, dates = _date_column(table)
    price_index, prices = _price_column(table, date_index)
    series = sorted(zip(dates, prices, (row.line for row in table.rows)))  # exports often come newest first
    for (earlier, _, earlier_line), (later, _, later_line) in zip(series, series[1:]):
        if earlier == later:
            first_line, second_line = sorted((earlier_line, later_line))
            raise DataError(f"The date {earlier} appears on line {first_line} and line {second_line}; "
                            "a price series needs one price a date. Remove one of them or paste it as plain text.")
    dates = [day for day, _, _ in series]
    prices = [price for _, price, _ in series]
    total_return = prices[-1] / prices[0] - 1
    if not math.isfinite(total_return):
        raise DataError(f"The prices run from {prices[0]:g} to {prices[-1]:g}, too far apart to summarise. "
                        "Check the price column or paste it as plain text.")
    periods_per_year = _periods_per_year(dates)
    drawdown, peak, trough = _max_drawdown(dates, prices)
    return DataCard(
        date_column=table.column_name(date_index), price_column=table.column_name(price_index),
        first_date=dates[0], last_date=dates[-1], points=len(prices),
        first_price=prices[0], last_price=prices[-1], total_return=total_return,
        annualised_volatility=_annualised_volatility(prices, periods_per_year), periods_per_year=periods_per_year,
        max_drawdown=drawdown, drawdown_peak=peak, drawdown_trough=trough,
        chart=_line_chart(dates, prices),
    )


def _parse_date(value: str) -> date | None:
    """An ISO-style date (2024-01-02, 2024/01/02), or the date of an ISO datetime; None for anything else."""
    match = _DATE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[3]), int(match[4]))
    except ValueError:
        return None


def _parse_number(value: str, delimiter: str) -> float | None:
    """A finite number, with an optional leading $; None for anything else.

    Commas group thousands only in tab or semicolon separated data: in comma separated data a comma
    inside a value is too likely a misquoted split.
    """
    text = value.strip()
    if _PLAIN_NUMBER.fullmatch(text) is None:
        if delimiter == "," or _GROUPED_NUMBER.fullmatch(text) is None:
            return None
        text = text.replace(",", "")
    number = float(text.replace("$", ""))
    return number if math.isfinite(number) else None


def _normal_header(name: str) -> str:
    """A header reduced to lowercase letters and digits, so "Adj Close", "adj_close" and "ADJ. CLOSE" match."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _mostly(values: list[object | None]) -> bool:
    """Whether at least half of the values were understood: a column of that kind with a few bad rows."""
    return 2 * sum(value is not None for value in values) >= len(values)


def _date_column(table: _Table) -> tuple[int, list[date]]:
    """The column of dates and its dates: a column named like one (date, day, time...) first, else the first
    whose values are dates. _NotAPriceSeries naming the first bad row when the dates column has one."""
    named = [i for i, name in enumerate(table.header) if _normal_header(name) in DATE_HEADERS]
    for index in named + [i for i in range(len(table.header)) if i not in named]:
        parsed = [_parse_date(row.fields[index]) for row in table.rows]
        if not _mostly(parsed):
            continue
        for row, day in zip(table.rows, parsed):
            if day is None:
                raise _NotAPriceSeries(f"line {row.line} has {_shown(row.fields[index])} in the "
                                       f"{table.column_name(index)} column, not a date like 2024-01-02")
        return index, parsed
    raise _NotAPriceSeries("no column of dates like 2024-01-02")


def _price_column(table: _Table, date_index: int) -> tuple[int, list[float]]:
    """The column of prices and its prices.

    A column named like one (adj close, close, price, ...) whose values are mostly numbers is the price
    column, and a bad row in it is a DataError naming its line; otherwise the first column of positive
    numbers is, and without one the table is not a price series.
    """
    others = [i for i in range(len(table.header)) if i != date_index]
    named = sorted((i for i in others if _normal_header(table.header[i]) in PRICE_HEADERS),
                   key=lambda i: PRICE_HEADERS.index(_normal_header(table.header[i])))
    for index in named:
        parsed = [_parse_number(row.fields[index], table.delimiter) for row in table.rows]
        if _mostly(parsed):
            return index, [_checked_price(table, row, index, price) for row, price in zip(table.rows, parsed)]
    not_positive: int | None = None
    for index in others:
        parsed = [_parse_number(row.fields[index], table.delimiter) for row in table.rows]
        if all(price is not None and price > 0 for price in parsed):
            return index, parsed
        if not_positive is None and all(price is not None for price in parsed):
            not_positive = index
    if not_positive is not None:
        raise _NotAPriceSeries(f"the {table.column_name(not_positive)} column has values at or below zero, "
                               "so it is not a price")
    raise _NotAPriceSeries("no column of numbers")


def _checked_price(table: _Table, row: _Row, index: int, price: float | None) -> float:
    """A price from the price column; DataError naming the line when it is missing, not a number or not above zero."""
    name = table.column_name(index)
    if price is None:
        raise DataError(f"Line {row.line} has {_shown(row.fields[index])} in the {name} column, not a number. "
                        "A price series needs a price on every row: fix the row or paste it as plain text.")
    if price <= 0:
        raise DataError(f"Line {row.line} has {row.fields[index].strip()} in the {name} column; prices must be above "
                        "zero. Fix the row or paste it as plain text.")
    return price


def _shown(value: str) -> str:
    """A value quoted for a message, cut short when long."""
    value = value.strip()
    if not value:
        return "nothing"
    return repr(value if len(value) <= SHOWN_VALUE_CHARS else value[:SHOWN_VALUE_CHARS] + "…")


def _periods_per_year(dates: list[date]) -> int:
    """How many returns a year the series has, from the median gap between its (sorted, distinct) dates."""
    gap = statistics.median((later - earlier).days for earlier, later in zip(dates, dates[1:]))
    for widest_gap, periods, _ in SAMPLING_BANDS:
        if gap <= widest_gap:
            return periods
    return YEARLY[0]


def _annualised_volatility(prices: list[float], periods_per_year: int) -> float | None:
    """The sample standard deviation of log returns scaled to a year; None with fewer than 3 prices."""
    if len(prices) < 3:
        return None
    # Differences of logs, not the log of a ratio: the ratio of a huge and a tiny price overflows.
    log_returns = [math.log(later) - math.log(earlier) for earlier, later in zip(prices, prices[1:])]
    return statistics.stdev(log_returns) * math.sqrt(periods_per_year)


def _max_drawdown(dates: list[date], prices: list[float]) -> tuple[float, date, date]:
    """The worst fall from a running peak (earliest of equals), with the peak's and the trough's dates."""
    peak_price, peak_date = prices[0], dates[0]
    worst, worst_peak, worst_trough = 0.0, dates[0], dates[0]
    for day, price in zip(dates, prices):
        if price > peak_price:
            peak_price, peak_date = price, day
        fall = price / peak_price - 1
        if fall < worst:
            worst, worst_peak, worst_trough = fall, peak_date, day
    return worst, worst_peak, worst_trough


def _chart_indexes(count: int) -> list[int]:
    """At most CHART_POINTS indexes spread evenly over count points, always the first and the last."""
    if count <= CHART_POINTS:
        return list(range(count))
    return [round(i * (count - 1) / (CHART_POINTS - 1)) for i in range(CHART_POINTS)]


def _line_chart(dates: list[date], prices: list[float]) -> LineChart:
    """Place the prices in the plot: dates across (true to uneven gaps), price up; a flat series runs mid-plot."""
    low, high = min(prices), max(prices)
    days = (dates[-1] - dates[0]).days  # > 0: the dates are distinct
    coordinates = []
    for index in _chart_indexes(len(prices)):
        x = PLOT_LEFT + (dates[index] - dates[0]).days / days * (PLOT_RIGHT - PLOT_LEFT)
        height = 0.5 if high == low else (prices[index] - low) / (high - low)
        y = PLOT_BOTTOM - height * (PLOT_BOTTOM - PLOT_TOP)
        coordinates.append(f"{x:.1f},{y:.1f}")
    return LineChart(points=" ".join(coordinates), low=low, high=high)
