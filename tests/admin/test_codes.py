"""/admin/codes: a batch minted by an admin, shown once with a CSV; listed by state with who used each; exported."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest

from app.audit_trail.models import AuditEvent
from app.billing.codes import mint_codes, redeem_code
from app.billing.models import RedeemCode
from app.database import utcnow
from app.extensions import db
from tests.conftest import csrf_from

HTMX = {"HX-Request": "true"}
CODE = re.compile(r"WB-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")


@pytest.fixture
def admin(login_as):
    return login_as("admin@example.com", admin=True)


def mint(client, **fields):
    token = csrf_from(client.get("/admin/codes").get_data(as_text=True))
    return client.post("/admin/codes", headers=HTMX,
                       data={"csrf_token": token, "wallet": "routed", "amount": "2.50", "count": "3", **fields})


def test_a_batch_is_shown_once_with_a_csv_and_stored_only_hashed(admin):
    answer = mint(admin, expires=(utcnow() + timedelta(days=30)).strftime("%Y-%m-%d"))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["HX-Trigger"] == "codes-changed"
    assert html.lstrip().startswith('<section id="codes-mint"') and 'data-copy="#minted-codes"' in html
    shown = re.search(r'<pre id="minted-codes"[^>]*>(.*?)</pre>', html, re.S).group(1).split()
    assert len(shown) == 3 and all(CODE.fullmatch(code) for code in shown)
    href = re.search(r'href="(data:text/csv[^"]+)" download', html).group(1)
    assert list(csv.reader(io.StringIO(unquote(href.split(",", 1)[1])))) == [["code"], *([code] for code in shown)]

    db.session.rollback()
    stored = db.session.scalars(db.select(RedeemCode)).all()
    assert len(stored) == 3 and {c.wallet_kind for c in stored} == {"routed"} and {c.amount for c in stored} == {2_500_000}
    assert all(c.created_by is not None and c.expires_at is not None for c in stored)
    assert not any(code in str(vars(c)) for c in stored for code in shown)  # never the plain code
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "codes_minted"))
    assert event.after == {"count": 3, "amount": 2_500_000, "wallet": "routed", "expires": stored[0].expires_at.strftime("%Y-%m-%d")}
    assert not any(code in str(event.after) + event.subject for code in shown)

    listing = admin.get("/admin/codes").get_data(as_text=True)
    assert not any(code in listing for code in shown)  # the list shows prefixes only
    assert all(f"{code[:7]}…" in listing for code in shown) and "admin@example.com" in listing


@pytest.mark.parametrize("fields,message", [
    ({"count": "0"}, "Mint from 1 to 1000"), ({"count": "1001"}, "Mint from 1 to 1000"),
    ({"amount": "0"}, "above $0"), ({"amount": "abc"}, "USD"), ({"expires": "2000-01-01"}, "after today"),
])
def test_a_bad_batch_is_refused_and_nothing_is_minted(admin, fields, message):
    answer = mint(admin, **fields)
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(RedeemCode)) == 0


def test_codes_are_listed_by_state_with_who_used_them_and_exported(admin, make_user, clock):
    user = make_user("redeemer@example.com")
    used, unused = mint_codes("credit", 1_000_000, 2)
    expiring = mint_codes("routed", 500_000, 1, expires_at=utcnow() + timedelta(days=1))[0]
    redeem_code(user.id, used)
    clock.advance(2 * 86_400)

    everything = admin.get("/admin/codes").get_data(as_text=True)
    assert everything.count('class="badge code-') == 3
    used_page = admin.get("/admin/codes?state=used", headers=HTMX).get_data(as_text=True)
    assert used_page.lstrip().startswith('<section id="codes"')
    assert "redeemer@example.com" in used_page and f"{used[:7]}…" in used_page and f"{unused[:7]}…" not in used_page
    assert f"{expiring[:7]}…" in admin.get("/admin/codes?state=expired").get_data(as_text=True)
    unused_page = admin.get("/admin/codes?state=unused").get_data(as_text=True)
    assert f"{unused[:7]}…" in unused_page and f"{expiring[:7]}…" not in unused_page
    assert "No used codes." not in used_page

    exported = admin.get("/admin/codes.csv")
    assert exported.mimetype == "text/csv" and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert {row["state"] for row in rows} == {"used", "unused", "expired"}
    redeemed = next(row for row in rows if row["state"] == "used")
    assert redeemed["redeemed_by"] == "redeemer@example.com" and redeemed["amount_usd"] == "1.000000"
    assert redeemed["created_by"] == "command line" and redeemed["prefix"] == f"{used[:7]}…"
    text = exported.get_data(as_text=True)
    assert not any(code in text for code in (used, unused, expiring))
    only_used = list(csv.DictReader(io.StringIO(admin.get("/admin/codes.csv?state=used").get_data(as_text=True))))
    assert [row["state"] for row in only_used] == ["used"]


def test_many_codes_page(admin):
    mint_codes("credit", 1_000_000, 60)
    first = admin.get("/admin/codes").get_data(as_text=True)
    assert "Page 1 of 2 · 60 in all" in first and first.count('class="badge code-') == 50
    assert admin.get("/admin/codes?page=2").get_data(as_text=True).count('class="badge code-') == 10


def test_no_codes_yet_says_so(admin):
    assert "No codes minted yet" in admin.get("/admin/codes").get_data(as_text=True)
    assert "No expired codes." in admin.get("/admin/codes?state=expired").get_data(as_text=True)


def test_users_cannot_mint(login_as):
    client = login_as("user@example.com")
    assert client.get("/admin/codes").status_code == 403 and client.get("/admin/codes.csv").status_code == 403
