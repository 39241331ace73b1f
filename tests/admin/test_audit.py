"""/admin/audit: every admin change, newest first, with who, when and before → after; filtered and paged."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.accounts.models import User
from app.audit_trail.service import record_change
from app.database import utcnow
from app.extensions import db
from tests.conftest import csrf_from

HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin(login_as):
    return login_as("admin@example.com", admin=True)


def admin_id(email: str = "admin@example.com") -> int:
    return db.session.scalar(db.select(User.id).where(User.email == email))


def test_changes_made_in_the_console_show_who_and_before_and_after(admin, make_user):
    user = make_user("alice@example.org")
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    admin.post(f"/admin/users/{user.id}/topup", headers=HTMX,
               data={"csrf_token": csrf_from(page), "wallet": "credit", "amount": "5", "memo": "welcome"})
    record_change(None, "channel_key_set", "channel relay-a", {"key": "cleared"}, {"key": "set"})
    db.session.commit()

    html = admin.get("/admin/audit").get_data(as_text=True)
    key_row, topup_row = html.index("channel_key_set"), html.index("wallet_topped_up")
    assert key_row < topup_row  # newest first
    assert "command line" in html and "admin@example.com" in html
    assert "credit wallet of alice@example.org" in html
    assert "$0.00" in html and "$5.00" in html and "welcome" in html  # money fields as dollars, before → after
    assert ">cleared</span>" in html and ">set</span>" in html
    assert 'title="' in html and " UTC" in html  # exact time on hover


def test_filters_by_action_actor_subject_and_day(admin, make_user, clock):
    other = make_user("second@example.com", admin=True)
    record_change(admin_id(), "route_reordered", "route gpt-4o-mini", {"channels": ["a", "b"]}, {"channels": ["b", "a"]})
    record_change(other.id, "model_hidden", "model claude-3-5-haiku", {"published": True}, {"published": False})
    db.session.commit()
    clock.advance(3 * 86_400)
    record_change(None, "catalog_synced", "catalog from the shipped snapshot", None, {"added": 20})
    db.session.commit()

    def rows(query: str) -> str:
        html = admin.get(f"/admin/audit?{query}", headers=HTMX).get_data(as_text=True)
        assert html.lstrip().startswith('<section id="audit"')
        return html

    assert "route_reordered" in rows("action=route_reordered") and "model_hidden" not in rows("action=route_reordered")
    second = rows("actor=second@example.com")
    assert "model_hidden" in second and "route_reordered" not in second
    cli = rows("actor=command+line")
    assert "catalog_synced" in cli and "model_hidden" not in cli
    assert "route_reordered" in rows("subject=gpt-4o") and "model_hidden" not in rows("subject=gpt-4o")
    assert "b, a" in rows("subject=gpt-4o")
    today = utcnow().date()
    recent = rows(f"from={today.isoformat()}")
    assert "catalog_synced" in recent and "route_reordered" not in recent
    earlier = rows(f"to={(today - timedelta(days=1)).isoformat()}")
    assert "route_reordered" in earlier and "catalog_synced" not in earlier
    assert "No change matches these filters." in rows("action=user_disabled")
    assert "route_reordered" in rows("from=not-a-date")  # a bad date is no filter


def test_pages_of_fifty_newest_first(admin):
    for n in range(55):
        record_change(admin_id(), "route_reordered", f"route m{n:02d}", {"channels": []}, {"channels": ["x"]})
    db.session.commit()
    first = admin.get("/admin/audit?action=route_reordered").get_data(as_text=True)
    assert "Page 1 of 2 · 55 in all" in first and "route m54" in first and "route m04" not in first
    assert "action=route_reordered" in first  # the pager keeps the filter
    second = admin.get("/admin/audit?action=route_reordered&page=2").get_data(as_text=True)
    assert "route m04" in second and "route m05" not in second


def test_an_empty_audit_log_says_so(admin):
    assert "No admin change recorded yet." in admin.get("/admin/audit").get_data(as_text=True)


def test_users_cannot_read_the_audit_log(login_as):
    assert login_as("user@example.com").get("/admin/audit").status_code == 403
