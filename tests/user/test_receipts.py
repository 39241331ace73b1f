"""The receipts list and a receipt's page: filters, pagination, scoping, and the words of the timeline."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import openai
import pytest

from app.database import utcnow
from app.extensions import db
from app.gateway.models import Attempt, Receipt
from app.gateway.receipts import (ERROR_WORDS, ReceiptFilters, error_label, failure_story, list_receipts,
                                  public_text)
from app.providers.base import ErrorClass
from app.routing.planner import SkipReason

CONTRACT_ERROR_CLASSES = ("timeout connect upstream_5xx rate_limited key_rejected model_mismatch bad_response "
                          "cooling_down key_missing lane_not_allowed insufficient_balance disabled no_mapping").split()


def _chat(client, model: str = "gpt-4o-mini") -> str:
    """Make one chat request through the real gateway and return its receipt id, served or not."""
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Which route did I take?"}])
    except openai.APIStatusError as error:
        return error.response.headers["X-Waybill-Receipt"]
    return raw.headers["X-Waybill-Receipt"]


@pytest.fixture
def story(openai_client, gateway):
    """Five real receipts: two on the primary, one fallback to the routed backup, one failed, one rejected."""
    from app.routing.models import Channel
    from app.routing.planner import forget_cached_routes
    ids = {"primary": [_chat(openai_client), _chat(openai_client)]}
    gateway.sim.set_fault("primary", status=503)
    ids["fallback"] = _chat(openai_client)
    gateway.sim.set_fault("backup", hang=True)
    db.session.rollback()  # a fresh snapshot: the server's writes came after this session's last read
    db.session.scalar(db.select(Channel).where(Channel.name == "backup")).timeout_s = 0.5
    db.session.commit()
    forget_cached_routes()
    ids["failed"] = _chat(openai_client)
    gateway.sim.reset()
    ids["rejected"] = _chat(openai_client, model="no-such-model")
    db.session.rollback()
    return ids


def _ids(listing) -> list[str]:
    return [r.id for r in listing.pagination.items]


def _filtered(user_id: int, **args) -> list[str]:
    return _ids(list_receipts(user_id, ReceiptFilters.parse(args)))


def test_filters_pick_the_receipts_the_dashboard_links_to(story, gateway):
    user = gateway.user_id
    assert len(_filtered(user)) == 5
    assert _filtered(user, status="failed", period="24h") == [story["failed"]]
    assert _filtered(user, status="rejected") == [story["rejected"]]
    assert set(_filtered(user, fallback="yes", period="24h")) == {story["fallback"], story["failed"]}
    assert set(_filtered(user, fallback="no")) == {*story["primary"], story["rejected"]}
    assert _filtered(user, lane="routed", period="30d") == [story["fallback"]]
    assert set(_filtered(user, lane="official")) == set(story["primary"])
    assert len(_filtered(user, model="gpt-4o-mini")) == 4
    assert _filtered(user, model="no-such-model") == [story["rejected"]]
    assert _filtered(user, status="succeeded", lane="routed", fallback="no") == []


def test_period_and_inclusive_dates_use_the_receipts_time(story, gateway):
    user = gateway.user_id
    old = db.session.get(Receipt, story["primary"][0])
    old.created_at = datetime.combine((utcnow() - timedelta(days=40)).date(), time(23, 59, 59))  # a day's last second
    yesterday = db.session.get(Receipt, story["primary"][1])
    yesterday.created_at = utcnow() - timedelta(hours=30)
    db.session.commit()
    assert story["primary"][0] not in _filtered(user, period="30d")
    assert story["primary"][1] in _filtered(user, period="30d")
    assert story["primary"][1] not in _filtered(user, period="24h")
    day = old.created_at.date().isoformat()
    assert _filtered(user, **{"from": day, "to": day}) == [old.id]
    assert old.id in _filtered(user, to=day)
    assert old.id not in _filtered(user, to=(old.created_at - timedelta(days=1)).date().isoformat())
    assert old.id not in _filtered(user, **{"from": yesterday.created_at.date().isoformat()})


def test_newest_first_in_pages_and_a_page_past_the_end_shows_the_last(story, gateway):
    everything = _ids(list_receipts(gateway.user_id, ReceiptFilters(), per_page=50))
    first = list_receipts(gateway.user_id, ReceiptFilters(), page=1, per_page=2)
    last = list_receipts(gateway.user_id, ReceiptFilters(), page=3, per_page=2)
    assert (first.pagination.pages, first.pagination.total) == (3, 5)
    assert _ids(first) + _ids(list_receipts(gateway.user_id, ReceiptFilters(), page=2, per_page=2)) + _ids(last) \
        == everything
    assert everything[0] == story["rejected"] and everything[-1] == story["primary"][0]
    beyond = list_receipts(gateway.user_id, ReceiptFilters(), page=99, per_page=2)
    assert beyond.pagination.page == 3 and _ids(beyond) == _ids(last)


def test_bad_filter_values_are_ignored_with_a_note_never_an_error():
    filters = ReceiptFilters.parse({"status": "exploded", "fallback": "maybe", "lane": "scenic", "period": "1y",
                                    "from": "2024-13-45", "to": "yesterday", "model": " gpt-4o-mini "})
    assert filters.query_args() == {"model": "gpt-4o-mini"}
    assert len(filters.notes) == 6
    assert any("status “exploded”" in note for note in filters.notes)
    swapped = ReceiptFilters.parse({"from": "2025-02-10", "to": "2025-02-01"})
    assert swapped.query_args() == {"from": "2025-02-01", "to": "2025-02-10"} and "swapped" in swapped.notes[0]
    assert ReceiptFilters.parse({"status": "", "fallback": ""}).active is False


def test_the_list_page_filters_paginates_and_polls_only_its_first_page(story, gateway, login_as, client):
    login_as("api@example.com")
    html = client.get("/receipts?fallback=yes&period=24h").get_data(as_text=True)
    assert f'id="receipt-{story["fallback"]}"' in html and f'id="receipt-{story["failed"]}"' in html
    assert f'id="receipt-{story["primary"][0]}"' not in html
    assert "Backup relay" in html and "fallback</span>" in html and "lane-routed" in html

    fragment = client.get("/receipts?status=failed", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="receipts"') and "<html" not in fragment
    assert 'data-poll' in fragment and 'hx-trigger="every 2s, visible"' in fragment
    assert 'hx-get="/receipts?status=failed"' in fragment

    bad = client.get("/receipts?status=exploded&from=2024-13-45&page=abc&fallback=maybe")
    assert bad.status_code == 200
    assert "Ignored status “exploded”" in bad.get_data(as_text=True)


def test_page_links_keep_the_filters_and_later_pages_do_not_poll(gateway, login_as, client, openai_client):
    from app.gateway.receipts import PER_PAGE
    for _ in range(PER_PAGE + 1):
        _chat(openai_client)
    login_as("api@example.com")
    first = client.get("/receipts?lane=official").get_data(as_text=True)
    assert 'href="/receipts?page=2&amp;lane=official"' in first
    second = client.get("/receipts?lane=official&page=2", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert second.count('<tr id="receipt-') == 1
    assert "data-poll" not in second and 'href="/receipts?page=1&amp;lane=official"' in second


def test_a_newcomer_is_told_how_to_get_a_first_receipt(login_as, client):
    login_as("newcomer@example.com")
    html = client.get("/receipts").get_data(as_text=True)
    assert "No receipts yet" in html and 'href="/keys"' in html
    assert "data-poll" in html, "the empty first page polls, so the first receipt appears by itself"


def test_filters_that_match_nothing_say_so(story, login_as, client):
    login_as("api@example.com")
    html = client.get("/receipts?status=interrupted").get_data(as_text=True)
    assert "Nothing matches these filters" in html and "No receipts yet" not in html


def test_someone_elses_receipt_or_an_unknown_one_is_the_sites_404(story, login_as, client):
    login_as("other@example.com")
    for receipt_id in (story["fallback"], "rcpt_unknown", "x" * 300):
        response = client.get(f"/receipts/{receipt_id}")
        assert response.status_code == 404
        assert "Page not found" in response.get_data(as_text=True)
    listing = client.get("/receipts").get_data(as_text=True)
    assert story["fallback"] not in listing and "No receipts yet" in listing


def test_a_fallback_receipt_page_tells_the_route_the_price_and_the_ledger_entry(story, gateway, login_as, client):
    login_as("api@example.com")
    receipt = db.session.get(Receipt, story["fallback"])
    html = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "Served by the backup Backup relay after the primary returned 503." in html
    assert '<ol id="attempts" class="timeline">' in html
    timeline = html[html.index('<ol id="attempts"'):]
    assert timeline.index("Primary (official)") < timeline.index("Backup relay")
    assert "Upstream server error" in timeline and "503" in timeline
    assert "$0.225" in html and "$0.9" in html and "× 1.5" in html
    assert f'href="/wallets/routed?entry={receipt.ledger_entry_id}"' in html
    assert "reported by the upstream" in html
    for secret in (gateway.sim.root, "/primary/v1", "/backup/v1", "sk-primary-secret", "sk-backup-secret"):
        assert secret not in html


def test_a_failed_receipt_page_tells_where_it_failed(story, login_as, client):
    login_as("api@example.com")
    html = client.get(f"/receipts/{story['failed']}").get_data(as_text=True)
    assert "Failed after fallback: the primary returned 503, the backup Backup relay timed out after" in html
    assert "no ledger entry" in html
    rejected = client.get(f"/receipts/{story['rejected']}").get_data(as_text=True)
    assert "Rejected before routing" in rejected and "No route was tried" in rejected


def test_every_error_class_has_words():
    for error_class in {*CONTRACT_ERROR_CLASSES, *map(str, ErrorClass), *map(str, SkipReason)}:
        assert error_class in ERROR_WORDS, error_class
        assert error_label(error_class) != error_class


def _receipt(status, stage=None, fallback=False, flags=(), attempts=()):
    return Receipt(id="rcpt_x", status=status, failure_stage=stage, fallback_used=fallback, flags=list(flags),
                   attempts=[Attempt(**a) for a in attempts])


def _attempt(position, label, outcome, error_class=None, http_status=None, latency_ms=None, detail=None):
    return dict(position=position, channel=label, label=label, lane="official", provider="openai",
                outcome=outcome, error_class=error_class, http_status=http_status, latency_ms=latency_ms,
                detail=detail)


@pytest.mark.parametrize("receipt, sentence", [
    (_receipt("failed", "after_fallback", True, attempts=[
        _attempt(1, "openai-direct", "error", "upstream_5xx", 503, 40),
        _attempt(2, "relay-a", "error", "timeout", None, 60_000)]),
     "Failed after fallback: the primary returned 503, the backup relay-a timed out after 60 s."),
    (_receipt("succeeded", None, True, attempts=[
        _attempt(1, "openai-direct", "error", "upstream_5xx", 503), _attempt(2, "relay-a", "ok", None, 200)]),
     "Served by the backup relay-a after the primary returned 503."),
    (_receipt("succeeded", None, True, attempts=[
        _attempt(1, "openai-direct", "skipped", "cooling_down"), _attempt(2, "relay-a", "ok", None, 200)]),
     "Served by the backup relay-a after the primary was skipped (cooling down after recent failures)."),
    (_receipt("succeeded", attempts=[_attempt(1, "openai-direct", "ok", None, 200)]),
     "Served by the primary, openai-direct, on the first try."),
    (_receipt("failed", "primary", attempts=[_attempt(1, "openai-direct", "error", "rate_limited", 429)]),
     "Failed at the primary: openai-direct was rate limited (429)."),
    (_receipt("failed", "primary", attempts=[_attempt(1, "openai-direct", "error", "client_error", 422)]),
     "Failed at the primary: openai-direct refused the request itself (422)."),
    (_receipt("failed", "no_route", True, attempts=[
        _attempt(1, "openai-direct", "skipped", "key_missing"), _attempt(2, "relay-a", "skipped", "disabled")]),
     "No route could be tried: the primary was skipped (no key configured for the channel), "
     "the backup relay-a was skipped (channel disabled by an admin)."),
    (_receipt("interrupted", "mid_stream", attempts=[
        _attempt(1, "openai-direct", "error", "connect", 200, detail="cut after 3 chunks")]),
     "Interrupted mid-stream: the primary had started answering when the upstream failed; "
     "the charge covers what was delivered."),
    (_receipt("interrupted", "client_disconnected", True, attempts=[
        _attempt(1, "openai-direct", "error", "key_rejected", 401), _attempt(2, "relay-a", "ok", None, 200)]),
     "Interrupted mid-stream: the backup relay-a (after the primary rejected the channel's key (401)) had "
     "started answering when the client disconnected; the charge covers what was delivered."),
    (_receipt("rejected", "before_routing"),
     "Rejected before routing: the request was refused before any route was tried, and nothing was charged."),
    (_receipt("interrupted", "mid_stream", flags=["review"], attempts=[_attempt(1, "openai-direct", "ok")]),
     "Interrupted: the request's worker stopped before it finished, so the sweep settled its hold at the "
     "reserved amount and flagged it for review."),
])
def test_the_failure_stage_in_one_sentence(app, receipt, sentence):
    assert failure_story(receipt) == sentence


def test_upstream_text_never_shows_an_address():
    assert public_text("connect to https://relay.example/v1/chat failed") == "connect to [address hidden] failed"
