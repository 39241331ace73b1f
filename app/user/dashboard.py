"""The dashboard at /: both wallets, spend per day, fallback at a glance and the latest receipts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from flask_login import current_user

from app.billing.ledger import DailySpend, daily_spend
from app.database import utcnow
from app.gateway.activity import fallback_glance, latest_receipts
from app.rendering import render
from app.user import bp
from app.user.wallets import WALLETS, wallet_context

# The chart's own coordinates (the viewBox); CSS scales it to its card, so text stays legible on a phone.
CHART_WIDTH, CHART_HEIGHT = 480, 200
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 78, 472, 12, 168  # room on the left for "$0.000025"
NICE_STEPS_IN_TENTHS = (10, 20, 25, 50)  # 1, 2, 2.5 and 5: gridlines people read at a glance


@bp.route("/")
def dashboard():
    context, now = wallet_context(), utcnow()
    spend = daily_spend({kind: wallet.id for kind, wallet in context["wallets"].items()}, now.date())
    return render("user/dashboard.html", **context, glance=fallback_glance(current_user.id, now),
                  charts={kind: spend_chart(kind, spend[kind]) for kind in WALLETS},
                  receipts=latest_receipts(current_user.id))


@dataclass(frozen=True)
class Column:
    """One day of the chart: its slot across the plot and, when it had spend, its bar."""

    day: date
    amount: int
    x: float
    width: float
    bar_y: float
    bar_height: float


@dataclass(frozen=True)
class SpendChart:
    """A wallet's spend per day laid out in the chart's coordinates, for the SVG template."""

    kind: str
    series: DailySpend
    columns: list[Column]
    ticks: list[tuple[float, int]]  # (y, micro-USD) of each gridline
    day_labels: list[tuple[float, date, str]]  # (x, day, text-anchor) under the axis

    width: ClassVar[int] = CHART_WIDTH
    height: ClassVar[int] = CHART_HEIGHT
    left: ClassVar[int] = PLOT_LEFT
    right: ClassVar[int] = PLOT_RIGHT
    top: ClassVar[int] = PLOT_TOP
    bottom: ClassVar[int] = PLOT_BOTTOM

    @property
    def busiest(self) -> Column:
        """The day with the most spend (the earliest of equals)."""
        return max(self.columns, key=lambda column: (column.amount, -column.day.toordinal()))


def nice_ceiling(micros: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten, in micro-USD, at or above micros (at least 2)."""
    scale = 1
    while True:
        for tenths in NICE_STEPS_IN_TENTHS:
            # 2.5 only from 25 up: a gridline must fall on a whole micro-dollar.
            if (tenths * scale) % 10 == 0 and tenths * scale // 10 >= max(micros, 2):
                return tenths * scale // 10
        scale *= 10


def spend_chart(kind: str, series: DailySpend) -> SpendChart:
    """Lay out bars, gridlines and day labels; the tallest day reaches the top gridline or just below it."""
    top = nice_ceiling(series.peak)
    plot_height, slot = PLOT_BOTTOM - PLOT_TOP, (PLOT_RIGHT - PLOT_LEFT) / len(series.days)
    columns = []
    for n, (day, amount) in enumerate(series.days):
        # A day with any spend shows at least a sliver, however small next to the peak.
        height = max(amount / top * plot_height, 1.5) if amount else 0
        columns.append(Column(day, amount, round(PLOT_LEFT + n * slot, 2), round(slot, 2),
                              round(PLOT_BOTTOM - height, 2), round(height, 2)))
    ticks = [0, top // 2, top] if top % 2 == 0 else [0, top]
    first, middle, last = columns[0], columns[len(columns) // 2], columns[-1]
    # The outer labels hang inwards from the plot's edges, so none is cut off by the viewBox.
    day_labels = [(first.x, first.day, "start"), (round(middle.x + middle.width / 2, 2), middle.day, "middle"),
                  (round(last.x + last.width, 2), last.day, "end")]
    return SpendChart(kind, series, columns,
                      [(round(PLOT_BOTTOM - tick / top * plot_height, 2), tick) for tick in ticks], day_labels)
