"""The dashboard: both wallets, spend per day as an SVG chart, fallback at a glance, latest receipts, low balance."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import openai
import pytest

from app.billing.holds import reserve, settle
from app.billing.ledger import daily_spend
from app.billing.wallets import wallet_of
from app.user.dashboard import nice_ceiling
from tests.conftest import assert_ledger_green

BAR_DAY = re.compile(r'<g class="day" data-day="([\d-]+)" data-micros="(\d+)">\s*<title>[^<]*</title>\s*'
                     r'<rect class="hit"[^>]*/>\s*(<rect class="bar")?')


def charge(wallet_id: int, micros: int) -> None:
    settle(reserve(wallet_id, micros).id, micros, memo="a request")


def chart_days(html: str, kind: str) -> dict[str, tuple[int, bool]]:
    """day -> (micro-USD, has a bar) from one wallet's chart."""
    svg = re.search(rf'<figure id="spend-{kind}".*?</figure>', html, re.S).group(0)
    return {day: (int(micros), bool(bar)) for day, micros, bar in BAR_DAY.findall(svg)}


def test_both_wallets_are_named_with_what_they_pay_for_and_an_empty_state_everywhere(login_as):
    page = login_as().get("/").get_data(as_text=True)
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "official Credit" in text and "routed balance" in text
    assert "Pays requests served by official channels" in text and "times the channel's multiplier" in text
    assert "No spend from your official Credit in the last 30 days." in text
    assert "No spend from your routed balance in the last 30 days." in text
    assert "No requests yet." in text and "<svg" not in page


def test_the_chart_has_a_bar_for_each_day_with_spend_and_the_right_totals(login_as, make_user, clock):
    user = make_user(credit_usd="50")
    client = login_as()
    wallet = wallet_of(user.id, "credit").id
    today = clock.now().replace(hour=10, minute=0, second=0, microsecond=0)
    spend = {0: [120_000, 3], 2: [2_500_000], 29: [7], 30: [999_999]}  # day 30 is outside the window
    for days_ago, amounts in spend.items():
        clock.at = today - timedelta(days=days_ago)
        for micros in amounts:
            charge(wallet, micros)
    clock.at = today
    page = client.get("/").get_data(as_text=True)
    days = chart_days(page, "credit")
    assert len(days) == 30 and list(days) == sorted(days)
    expected = {(today - timedelta(days=n)).date().isoformat(): sum(amounts) for n, amounts in spend.items() if n < 30}
    assert {day: micros for day, (micros, bar) in days.items() if bar} == expected
    assert all(micros == 0 for day, (micros, bar) in days.items() if not bar)
    assert 'data-total="2620010"' in page and "$2.62001 in 30 days" in page
    svg = re.search(r'<svg class="spend-chart lane-official".*?</svg>', page, re.S).group(0)
    assert 'role="img"' in svg and '<title id="spend-credit-title">' in svg and '<desc id="spend-credit-desc">' in svg
    assert "the busiest day was" in svg and "$2.50" in svg
    assert ">$2.50</text>" in svg and ">$1.25</text>" in svg and ">$0.00</text>" in svg  # the y axis
    assert "UTC day" in svg and "style=" not in svg
    assert f"{(today - timedelta(days=2)).date().isoformat()}: $2.50</title>" in svg  # a bar's tooltip
    assert "No spend from your routed balance" in page


def test_spend_is_bucketed_by_utc_day_in_sql(app, make_user, clock):
    user = make_user(credit_usd="1", routed_usd="1")
    wallets = {kind: wallet_of(user.id, kind).id for kind in ("credit", "routed")}
    midnight = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for moment, micros in ((midnight - timedelta(microseconds=1), 5), (midnight, 7), (midnight + timedelta(hours=23), 11)):
        clock.at = moment
        charge(wallets["routed"], micros)
    series = daily_spend(wallets, midnight.date())
    assert series["routed"].days[-1] == (midnight.date(), 18) and series["routed"].days[-2][1] == 5
    assert series["routed"].total == 23 and series["credit"].total == 0 and len(series["credit"].days) == 30


@pytest.mark.parametrize("peak, top", [(0, 2), (1, 2), (3, 5), (7, 10), (2_200, 2_500), (2_620_010, 5_000_000),
                                      (10_000_000, 10_000_000)])
def test_the_y_axis_tops_out_at_a_round_figure(peak, top):
    assert nice_ceiling(peak) == top


def _chat(openai_client):
    return openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]).headers["X-Waybill-Receipt"]


def test_fallback_at_a_glance_counts_and_links_to_the_filtered_receipts(gateway, openai_client, login_as, clock):
    _chat(openai_client)  # primary serves
    clock.advance(-3 * 86_400)  # three days ago: counted in 30 days only
    gateway.sim.set_fault("primary", status=503, times=1)
    _chat(openai_client)
    clock.advance(3 * 86_400)
    gateway.sim.set_fault("primary", status=503, times=1)
    routed_receipt = _chat(openai_client)  # falls back and settles on the routed lane
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=503)
    with pytest.raises(openai.InternalServerError):
        _chat(openai_client)  # both fail: a failed receipt that also fell back
    gateway.sim.reset()
    page = login_as("api@example.com").get("/").get_data(as_text=True)

    def cells(row: str) -> list[tuple[str, str]]:
        html = re.search(rf'<tr id="glance-{row}">.*?</tr>', page, re.S).group(0)
        return re.findall(r'<a href="([^"]+)" data-period="[^"]+">(\d+)</a>', html)
    assert cells("fallback") == [("/receipts?fallback=yes&amp;period=24h", "2"), ("/receipts?fallback=yes&amp;period=30d", "3")]
    assert cells("routed") == [("/receipts?lane=routed&amp;period=24h", "1"), ("/receipts?lane=routed&amp;period=30d", "2")]
    assert cells("failed") == [("/receipts?status=failed&amp;period=24h", "1"), ("/receipts?status=failed&amp;period=30d", "1")]

    latest = re.search(r'<section id="latest-receipts">.*?</section>', page, re.S).group(0)
    assert latest.count("<tr id=\"receipt-") == 4
    row = re.search(rf'<tr id="receipt-{routed_receipt}">.*?</tr>', latest, re.S).group(0)
    assert f'href="/receipts/{routed_receipt}"' in row and "Backup relay" in row
    assert "lane-routed" in row and 'class="badge fallback"' in row and "status-succeeded" in row
    assert 'class="money"' in row and "no route served" in latest and "status-failed" in latest
    assert "127.0.0.1" not in latest and "sk-" not in latest  # users never see a channel's base URL or key
    assert_ledger_green()


def test_a_low_wallet_gets_a_notice_pointing_to_redeeming_a_code(login_as, make_user):
    make_user(credit_usd="0.99", routed_usd="1")
    page = login_as().get("/").get_data(as_text=True)
    credit_card = re.search(r'<article id="wallet-credit".*?</article>', page, re.S).group(0)
    routed_card = re.search(r'<article id="wallet-routed".*?</article>', page, re.S).group(0)
    assert "low-balance" in credit_card and 'href="/wallets/credit#redeem"' in credit_card
    assert "Redeem a code" in credit_card and "low-balance" not in routed_card
