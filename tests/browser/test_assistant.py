"""The research assistant in real Chromium: a streamed answer with its receipt, refusals, privacy, hostile
answers, data cards and the stop button; every flow ends with the ledger's invariants."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import sign_in

from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.conftest import assert_ledger_green

PRICES_CSV = "Date,Close\n" + "\n".join(
    f"2024-01-{day:02d},{price}" for day, price in
    zip(range(2, 12), (100, 104, 102, 110, 99, 95, 101, 108, 112, 115)))


def _sign_in(page, email: str = "api@example.com") -> None:
    sign_in(page, email, "/assistant", heading="Research assistant")


def _new_conversation(page) -> str:
    """Start a conversation from the list page; returns its URL path."""
    page.get_by_role("button", name="New conversation").first.click()
    expect(page).to_have_url(re.compile(r"/assistant/\d+$"))
    expect(page.locator("#quote .send-row")).to_be_visible()
    return re.search(r"/assistant/\d+$", page.url).group(0)


def _receipts_and_entries():
    from app.billing.models import LedgerEntry
    from app.extensions import db
    from app.gateway.models import Receipt
    db.session.rollback()
    return db.session.scalars(db.select(Receipt)).all(), db.session.scalars(db.select(LedgerEntry)).all()


def test_an_answer_streams_in_with_its_route_and_the_receipts_charge(page, gateway):
    page.add_init_script(RECORD_VIOLATIONS)
    gateway.sim.set_fault("primary", chunk_delay_ms=40, reply_text="Revenue rose **12%** on strong demand. " * 3)
    _sign_in(page)
    expect(page.locator(".conversation-list .empty")).to_contain_text("No conversations yet")
    _new_conversation(page)
    expect(page.locator("#quote .estimate")).to_contain_text("holds up to")
    page.fill("#content", "How did revenue do?")
    page.get_by_role("button", name="Send").click()

    answer = page.locator(".turn.answer").last
    expect(answer.locator(".answer-text.streaming")).to_contain_text("Revenue rose")  # text arrives before the end
    expect(answer.locator(".answer-receipt")).to_be_visible()
    expect(answer.locator(".answer-text.markdown strong").first).to_have_text("12%")
    expect(answer.locator(".answer-receipt")).to_contain_text("Primary (official)")
    shown = int(answer.locator(".charge").get_attribute("data-micros"))

    receipts, entries = _receipts_and_entries()
    assert len(receipts) == 1
    receipt = receipts[0]
    assert receipt.endpoint == "assistant" and receipt.status == "succeeded" and receipt.api_key_id is None
    assert shown == receipt.charge > 0
    charge_entries = [e for e in entries if e.id == receipt.ledger_entry_id]
    assert len(charge_entries) == 1 and charge_entries[0].amount == -receipt.charge
    assert gateway.balances()["credit"] == (10_000_000 - receipt.charge, 0)

    answer.locator(".receipt-link").click()
    expect(page).to_have_url(re.compile(f"/receipts/{receipt.id}$"))
    expect(page.locator("#receipt-endpoint")).to_contain_text("assistant")
    assert page.evaluate("window.__cspViolations") == []
    assert_ledger_green()


def test_a_user_without_money_is_told_so_and_nothing_is_sent_or_charged(page, gateway, make_user):
    make_user("broke@example.com")
    _sign_in(page, "broke@example.com")
    _new_conversation(page)
    refusal = page.locator("#quote .refusal")
    expect(refusal).to_contain_text("No allowed wallet can cover this message")
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_disabled()
    page.fill("#content", "Summarise the filing")
    page.evaluate("document.querySelector('#composer').requestSubmit()")  # past the disabled button: the server refuses too
    expect(page.locator("#composer .form-error")).to_contain_text("Nothing was sent")
    expect(page.locator(".turn")).to_have_count(0)
    assert page.locator("#content").input_value() == "Summarise the filing"  # the draft survives the refusal
    receipts, _entries = _receipts_and_entries()
    assert receipts == [] and gateway.sim.log() == []
    assert_ledger_green()


def test_another_user_gets_404_for_a_conversation(page, gateway, make_user, live_server):
    _sign_in(page)
    path = _new_conversation(page)
    make_user("other@example.com")
    other = page.context.browser.new_context(base_url=live_server)
    try:
        stranger = other.new_page()
        _sign_in(stranger, "other@example.com")
        for url in (path, f"{path}/export.md"):
            assert stranger.goto(url).status == 404
    finally:
        other.close()
    # The owner still has it after signing out and in again.
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page)
    expect(page.locator(".conversation-list li")).to_have_count(1)
    assert page.goto(path).status == 200

    page.once("dialog", lambda dialog: dialog.accept())  # deleting asks first
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/assistant$"))
    expect(page.locator("#flashes")).to_contain_text("Conversation deleted")
    expect(page.locator(".conversation-list .empty")).to_be_visible()
    assert page.goto(path).status == 404


def test_a_script_in_an_answer_is_shown_as_text_and_never_runs(page, gateway):
    page.add_init_script(RECORD_VIOLATIONS)
    gateway.sim.set_fault("primary", reply_text=(
        '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> '
        '[a link](https://example.com/x) [bad](javascript:window.__pwned=3)'))
    _sign_in(page)
    _new_conversation(page)
    page.fill("#content", "Say something hostile")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".turn.answer").last
    expect(answer.locator(".answer-receipt")).to_be_visible()
    expect(answer.locator(".answer-text")).to_contain_text("<script>window.__pwned = 1</script>")
    assert answer.locator(".answer-text script, .answer-text img").count() == 0
    link = answer.locator(".answer-text a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("rel", "noopener nofollow")
    page.reload()  # the stored answer renders as safely as the streamed one
    expect(page.locator(".turn.answer .answer-text")).to_contain_text("<script>")
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__cspViolations") == []


def test_a_pasted_price_csv_shows_its_data_card_and_chart_and_goes_to_the_model(page, gateway):
    _sign_in(page)
    _new_conversation(page)
    page.click("details.paste summary")
    page.fill("#data", PRICES_CSV)
    card = page.locator("#quote .data-card")
    expect(card).to_contain_text("+15.00%")  # 100 → 115
    expect(card).to_contain_text("-13.64%")  # 110 → 95
    expect(card.locator("svg polyline")).to_have_count(1)
    expect(page.locator("#quote .data-size")).to_contain_text("a price series of 10 rows")
    page.fill("#content", "Explain the chart pattern")
    page.get_by_role("button", name="Send").click()
    question = page.locator(".turn.question").last
    expect(question.locator(".data-card svg polyline")).to_have_count(1)
    expect(page.locator(".turn.answer .answer-receipt")).to_be_visible()
    sent = gateway.sim.log("primary")[-1]["body"]["messages"]
    assert sent[0]["role"] == "system" and "Research support, not financial advice" in sent[0]["content"]
    assert "Return: +15.00%" in sent[-1]["content"] and "2024-01-11,115" in sent[-1]["content"]

    expect(page.locator("#data")).to_be_hidden()  # the sent data went with its question; the composer starts empty
    page.click("details.paste summary")
    page.fill("#data", "Date,Close\n2024-01-02,100\n2024-01-03,101,oops\n")
    expect(page.locator("#quote .data-error")).to_contain_text("Line 3")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()

    page.set_viewport_size({"width": 390, "height": 844})  # the card, its chart and the answer fit a phone
    page.reload()
    expect(page.locator(".turn.question .data-card")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_stop_ends_the_answer_and_charges_only_what_was_delivered(page, gateway):
    gateway.sim.set_fault("primary", chunk_delay_ms=150, reply_tokens=200)
    _sign_in(page)
    _new_conversation(page)
    page.fill("#content", "Write at length")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".turn.answer").last
    expect(answer.locator(".answer-text.streaming")).to_contain_text("Simulated")
    answer.get_by_role("button", name="Stop").click()
    expect(page.locator(".turn.answer").last.locator(".answer-note")).to_contain_text("Charged only for what was delivered")
    receipts, _entries = _receipts_and_entries()
    receipt = receipts[0]
    assert receipt.status == "interrupted" and 0 < receipt.completion_tokens < 200
    assert int(page.locator(".turn.answer .charge").get_attribute("data-micros")) == receipt.charge
    assert_ledger_green()
