"""The wallet pages: the ledger with its filters, pages, receipt links and highlighted entry, and the CSV export."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event

from app.billing.holds import reserve, settle
from app.billing.ledger import EXPORT_BATCH
from app.billing.models import EntryKind, LedgerEntry, Wallet
from app.billing.wallets import credit, post_entry, wallet_of
from app.database import write_transaction
from app.extensions import db
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green

HTMX = {"HX-Request": "true"}
ROW = re.compile(r'<tr id="entry-(\d+)"')


def charge(wallet_id: int, micros: int, memo: str = "a request") -> int:
    """A settled charge on a wallet, as the gateway makes one; the entry's id."""
    hold = reserve(wallet_id, micros)
    return settle(hold.id, micros, memo=memo).entry.id


def listed_ids(html: str) -> list[int]:
    return [int(n) for n in ROW.findall(html)]


def entry_ids(wallet_id: int, *where) -> list[int]:
    return list(db.session.scalars(db.select(LedgerEntry.id).where(LedgerEntry.wallet_id == wallet_id, *where)
                                   .order_by(LedgerEntry.id.desc())))


@pytest.fixture
def user_wallet(make_user, login_as):
    """A signed-in user; their credit wallet."""
    user = make_user()
    login_as()
    return wallet_of(user.id, "credit")


def test_both_wallet_pages_name_the_wallet_and_what_it_pays_for(client, user_wallet):
    credit_page = client.get("/wallets/credit").get_data(as_text=True)
    routed_page = client.get("/wallets/routed").get_data(as_text=True)
    assert "<h1>Official Credit</h1>" in credit_page and "official channels" in credit_page
    assert "<h1>Routed balance</h1>" in routed_page and "multiplier" in routed_page
    for page in (credit_page, routed_page):
        assert 'id="redeem"' in page and 'id="wallet-balances"' in page and 'id="ledger"' in page
    assert "No ledger entries yet" in credit_page


def test_the_ledger_pages_fifty_entries_at_a_time_newest_first_with_no_cap(client, user_wallet):
    for n in range(120):
        credit(user_wallet.id, n + 1, memo=f"top-up {n}")
    everything = entry_ids(user_wallet.id)
    first = client.get("/wallets/credit").get_data(as_text=True)
    assert listed_ids(first) == everything[:50]
    assert "Page 1 of 3 · 120 in all" in first
    third = client.get("/wallets/credit?page=3").get_data(as_text=True)
    assert listed_ids(third) == everything[100:]
    assert 'rel="prev"' in third and 'rel="next"' not in third
    # htmx asks for the ledger alone: the fragment, with the filters and pager inside it.
    fragment = client.get("/wallets/credit?page=2", headers=HTMX).get_data(as_text=True)
    assert fragment.lstrip().startswith("<section id=\"ledger\"") and "<html" not in fragment
    assert listed_ids(fragment) == everything[50:100]


def test_filters_by_kind_and_inclusive_utc_dates_and_the_pager_keeps_them(client, user_wallet, clock):
    day_one = clock.now().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.at = day_one
    credit(user_wallet.id, 100_000_000, memo="first")
    for n in range(3):
        clock.at = day_one + timedelta(days=n, hours=11, minutes=59)  # 23:59 of each day: still that day
        for _ in range(20):
            charge(user_wallet.id, 1_000)
    start, end = day_one.date() + timedelta(days=1), day_one.date() + timedelta(days=2)
    page = client.get(f"/wallets/credit?type=charge&from={start}&to={end}").get_data(as_text=True)
    wanted = entry_ids(user_wallet.id, LedgerEntry.kind == "charge",
                       LedgerEntry.created_at >= day_one + timedelta(days=1))
    assert len(wanted) == 40 and listed_ids(page) == wanted
    assert '<option value="charge" selected>' in page
    assert f'value="{start}"' in page and f'value="{end}"' in page
    assert "Page 1 of 1" not in page  # 40 entries fit one page: no pager at all
    topups = client.get("/wallets/credit?type=topup").get_data(as_text=True)
    assert listed_ids(topups) == entry_ids(user_wallet.id, LedgerEntry.kind == "topup")
    nothing = client.get(f"/wallets/credit?to={day_one.date() - timedelta(days=1)}").get_data(as_text=True)
    assert listed_ids(nothing) == [] and "No entries match these filters" in nothing
    # Malformed filters are no filters.
    assert len(listed_ids(client.get("/wallets/credit?type=bogus&from=yesterday").get_data(as_text=True))) == 50
    # The pager and the CSV link keep the filters.
    for _ in range(20):
        charge(user_wallet.id, 1_000)
    paged = client.get(f"/wallets/credit?type=charge&from={start}").get_data(as_text=True)
    assert f'href="/wallets/credit?page=2&amp;type=charge&amp;from={start}" rel="next"' in paged
    assert f'/wallets/credit/ledger.csv?type=charge&amp;from={start}' in paged


def test_an_entry_link_opens_the_page_holding_it_with_the_row_highlighted(client, user_wallet):
    for n in range(130):
        credit(user_wallet.id, n + 1)
    target = entry_ids(user_wallet.id)[75]  # the 76th newest: page 2
    page = client.get(f"/wallets/credit?entry={target}").get_data(as_text=True)
    assert "Page 2 of 3" in page
    row = re.search(rf'<tr id="entry-{target}"[^>]*>', page).group(0)
    assert 'class="highlight"' in row and 'aria-current="true"' in row
    assert page.count('class="highlight"') == 1
    # Another user's entry, or one from the other wallet, highlights nothing and shows page 1.
    other = wallet_of(user_wallet.user_id, "routed")
    foreign = credit(other.id, 5).id
    page = client.get(f"/wallets/credit?entry={foreign}").get_data(as_text=True)
    assert 'class="highlight"' not in page and "Page 1 of 3" in page


def test_charges_link_to_their_receipts_in_one_query_for_the_whole_page(gateway, openai_client, login_as, app):
    for _ in range(3):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client = login_as("api@example.com")
    db.session.rollback()
    receipts = {r.ledger_entry_id: r.id for r in db.session.scalars(db.select(Receipt))}
    assert len(receipts) == 3

    client.get("/wallets/credit")  # warm the caches a first request fills
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        page = client.get("/wallets/credit").get_data(as_text=True)
        few = len(statements)
        for _ in range(5):
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        statements.clear()
        client.get("/wallets/credit")
        assert len(statements) == few  # more charges on the page, the same number of queries: no N+1
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    for entry_id, receipt_id in receipts.items():
        row = re.search(rf'<tr id="entry-{entry_id}".*?</tr>', page, re.S).group(0)
        assert f'href="/receipts/{receipt_id}"' in row
    assert_ledger_green()


def test_a_refund_links_to_the_receipt_it_refunds(gateway, openai_client, login_as):
    from app.billing.refunds import refund
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    db.session.rollback()
    receipt = db.session.scalar(db.select(Receipt))
    refunded = refund(receipt.hold_id, receipt.charge, memo="goodwill")
    page = login_as("api@example.com").get("/wallets/credit").get_data(as_text=True)
    row = re.search(rf'<tr id="entry-{refunded.id}".*?</tr>', page, re.S).group(0)
    assert "refund" in row and f'href="/receipts/{receipt.id}"' in row
    assert_ledger_green()


def _parse_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def assert_csv_is_the_ledger(rows: list[dict], wallet_id: int, *where) -> None:
    """Every CSV row is the database's entry, in the same order, amounts exact to the micro-dollar."""
    entries = list(db.session.scalars(db.select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id, *where)
                                      .order_by(LedgerEntry.id.desc())))
    receipts = dict(db.session.execute(db.select(Receipt.ledger_entry_id, Receipt.id)).all())
    assert len(rows) == len(entries)
    for row, entry in zip(rows, entries):
        assert int(row["entry_id"]) == entry.id
        assert row["created_at_utc"] == entry.created_at.isoformat(timespec="microseconds") + "Z"
        assert row["kind"] == entry.kind
        assert Decimal(row["amount_usd"]) * 1_000_000 == entry.amount
        assert Decimal(row["balance_after_usd"]) * 1_000_000 == entry.balance_after
        assert row["memo"].removeprefix("'") == entry.memo
        assert row["receipt_id"] == receipts.get(entry.id, "")


def test_the_csv_is_every_entry_of_the_wallet_exactly_streamed_in_batches(client, user_wallet, app):
    total = EXPORT_BATCH * 2 + 7  # more than two batches: the export streams them one query at a time
    with write_transaction():
        balance = 0
        for n in range(total):
            amount = 263 + n
            balance += amount
            post_entry(user_wallet.id, EntryKind.TOPUP, amount, balance, memo=f"bulk {n}")
        db.session.execute(db.update(Wallet).where(Wallet.id == user_wallet.id).values(balance=balance))
    charge(user_wallet.id, 263, memo="=HYPERLINK(\"http://evil.example\")")
    response = client.get("/wallets/credit/ledger.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="waybill-credit-ledger-\d{4}-\d{2}-\d{2}\.csv"',
                        response.headers["Content-Disposition"])
    assert response.is_streamed
    rows = _parse_csv(response)
    assert rows[0]["amount_usd"] == "-0.000263" and rows[0]["memo"] == "'=HYPERLINK(\"http://evil.example\")"
    assert rows[-1]["amount_usd"] == "0.000263" and rows[-1]["memo"] == "bulk 0"
    assert_csv_is_the_ledger(rows, user_wallet.id)
    assert_ledger_green()


def test_the_csv_honours_the_filters_and_links_receipts(gateway, openai_client, login_as):
    for _ in range(2):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client = login_as("api@example.com")
    credit_wallet = wallet_of(gateway.user_id, "credit")
    charges = _parse_csv(client.get("/wallets/credit/ledger.csv?type=charge"))
    assert len(charges) == 2 and all(row["receipt_id"].startswith("rcpt_") for row in charges)
    assert_csv_is_the_ledger(charges, credit_wallet.id, LedgerEntry.kind == "charge")
    assert_csv_is_the_ledger(_parse_csv(client.get("/wallets/credit/ledger.csv")), credit_wallet.id)
    assert _parse_csv(client.get("/wallets/credit/ledger.csv?from=2000-01-01&to=2000-01-31")) == []
    routed = _parse_csv(client.get("/wallets/routed/ledger.csv"))
    assert_csv_is_the_ledger(routed, wallet_of(gateway.user_id, "routed").id)


@pytest.mark.parametrize("memo", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB"])
def test_formula_like_memos_are_quoted_in_the_csv(client, user_wallet, memo):
    credit(user_wallet.id, 1, memo=memo)
    assert _parse_csv(client.get("/wallets/credit/ledger.csv"))[0]["memo"] == f"'{memo}"


def test_a_wallet_page_and_its_csv_show_only_the_users_own_ledger(client, user_wallet, make_user):
    stranger = make_user("stranger@example.com", credit_usd="7")
    mine = credit(user_wallet.id, 1_000_000, memo="mine").id
    assert listed_ids(client.get("/wallets/credit").get_data(as_text=True)) == [mine]
    assert [row["memo"] for row in _parse_csv(client.get("/wallets/credit/ledger.csv"))] == ["mine"]
    assert client.get("/wallets/gold/ledger.csv").status_code == 404
    assert wallet_of(stranger.id, "credit").balance == 7_000_000
