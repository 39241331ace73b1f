"""The research assistant over HTTP, against the real gateway and simulator: privacy, CSRF, money, routing,
the system prompt and history, once-only answering, stopping, export, bad data and hostile answers.

The browser flows live in tests/browser/test_assistant.py; these check what the server itself answers.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator

import pytest
import requests
from flask import Flask
from markupsafe import escape
from sqlalchemy import Select
from werkzeug.test import TestResponse

from app.accounts.models import User
from app.assistant.models import ChatMessage, Conversation
from app.billing.models import LedgerEntry
from app.billing.pricing import usd_text
from app.billing.wallets import wallets_of
from app.extensions import db
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green, csrf_from

MODEL = "gpt-4o-mini"
PASSWORD = "password123"
OWNER = "api@example.com"  # the gateway fixture's user: $10 Credit, $10 routed
START_MICROS = 10_000_000
HTTP_TIMEOUT_S = 15  # each read of a live-server request; a hung stream fails the test instead of blocking it
RAGGED_CSV = "Date,Close\n2024-01-02,100\n2024-01-03,101,oops"
PRICES_CSV = "Date,Close\n2024-01-02,100\n2024-01-03,104\n2024-01-04,102"
STREAM_URL = re.compile(r'sse-connect="([^"]+)"')
JAVASCRIPT_HREF = re.compile(r"""href\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


class Browser:
    """One browser's session on the app, through the Flask test client."""

    # Each request runs in an app context of its own, as in production: the fixture's shared context would
    # also share `g`, and with it Flask-Login's signed-in user, between two browsers.

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.csrf = ""

    def request(self, method: str, url: str, **kwargs) -> TestResponse:
        with self.app.app_context():
            response = self.client.open(url, method=method, **kwargs)
            response.get_data()  # a streamed body runs now, inside this request's own context
            return response

    def get(self, url: str, **kwargs) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: dict | None = None, *, token: bool = True, **kwargs) -> TestResponse:
        """POST a form, with this session's CSRF token unless told not to."""
        form = dict(data or {})
        if token:
            form["csrf_token"] = self.csrf or csrf_from(self.get("/login").text)
        return self.request("POST", url, data=form, **kwargs)

    def sign_in(self, email: str) -> Browser:
        response = self.post("/login", {"email": email, "password": PASSWORD})
        assert response.status_code == 302, response.text
        self.csrf = csrf_from(self.get("/assistant").text)
        return self

    def new_conversation(self) -> int:
        response = self.post("/assistant/conversations")
        assert response.status_code == 303, response.text
        return int(re.fullmatch(r"/assistant/(\d+)", response.location).group(1))

    def send(self, conversation_id: int, content: str, *, data: str = "", lane: str = "any",
             htmx: bool = False) -> TestResponse:
        """Ask a question as the composer posts it: answered in the request, or left pending for htmx."""
        headers = {"HX-Request": "true"} if htmx else {}
        return self.post(f"/assistant/{conversation_id}/messages",
                         {"model": MODEL, "content": content, "lane": lane, "data": data}, headers=headers)

    def ask(self, conversation_id: int, content: str, **fields) -> int:
        """Ask and have it answered in the request; the answer's message id (from the redirect's anchor)."""
        response = self.send(conversation_id, content, **fields)
        assert response.status_code == 303, response.text
        return int(re.fullmatch(rf"/assistant/{conversation_id}#message-(\d+)", response.location).group(1))

    def ask_pending(self, conversation_id: int, content: str) -> str:
        """Ask as the page does with scripts on; the pending answer's stream URL, as the page would connect to it."""
        response = self.send(conversation_id, content, htmx=True)
        assert response.status_code == 200, response.text
        return STREAM_URL.search(response.text).group(1)


@pytest.fixture
def owner(app, gateway) -> Browser:
    return Browser(app).sign_in(OWNER)


def _signed_in(app: Flask, make_user, email: str, **money: str) -> Browser:
    make_user(email, **money)
    return Browser(app).sign_in(email)


def _http_session(live_server: str, email: str) -> requests.Session:
    """A real HTTP session against the live server, signed in through the login form."""
    session = requests.Session()
    token = csrf_from(session.get(f"{live_server}/login", timeout=HTTP_TIMEOUT_S).text)
    response = session.post(f"{live_server}/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                            allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 302, response.text
    return session


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of each server-sent event; several data: lines join with line breaks, as browsers do."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
    if data:
        yield name, "\n".join(data)


def _events(response: TestResponse) -> list[tuple[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/event-stream", response.text
    return list(sse_events(response.text.split("\n")))


def _deltas(events: list[tuple[str, str]]) -> str:
    return "".join(data for name, data in events if name == "delta")


def _turn_html(page: str, message_id: int) -> str:
    """One message's <article> out of a conversation page."""
    match = re.search(rf'<article[^>]*id="message-{message_id}".*?</article>', page, re.DOTALL)
    assert match, f"message {message_id} is not on the page"
    return match.group(0)


def _fresh(statement: Select) -> list:
    """Rows as committed now: the fixture's session may hold an older snapshot."""
    db.session.rollback()
    return db.session.scalars(statement).all()


def _messages(conversation_id: int | None = None) -> list[ChatMessage]:
    query = db.select(ChatMessage).order_by(ChatMessage.id)
    if conversation_id is not None:
        query = query.where(ChatMessage.conversation_id == conversation_id)
    return _fresh(query)


def _message(message_id: int) -> ChatMessage:
    return _fresh(db.select(ChatMessage).where(ChatMessage.id == message_id))[0]


def _receipts() -> list[Receipt]:
    return _fresh(db.select(Receipt).order_by(Receipt.created_at))


def _ledger_entry(entry_id: int) -> LedgerEntry:
    return _fresh(db.select(LedgerEntry).where(LedgerEntry.id == entry_id))[0]


def _balances(user_id: int) -> dict[str, tuple[int, int]]:
    """(balance, reserved) of each of the user's wallets, read fresh."""
    db.session.rollback()
    return {kind: (wallet.balance, wallet.reserved) for kind, wallet in wallets_of(user_id).items()}


def _user_id(email: str) -> int:
    return _fresh(db.select(User.id).where(User.email == email))[0]


def _conversation_count() -> int:
    return len(_fresh(db.select(Conversation.id)))


# --- privacy ------------------------------------------------------------------------------------------------


def test_another_users_conversation_answers_404_on_every_route_and_is_left_untouched(app, owner, make_user, gateway):
    conversation_id = owner.new_conversation()
    stream_url = owner.ask_pending(conversation_id, "Owner's private question")
    answer_id = int(stream_url.rsplit("/", 2)[1])
    base = f"/assistant/{conversation_id}"
    stranger = _signed_in(app, make_user, "other@example.com", credit_usd="1")

    assert stranger.get(base).status_code == 404
    assert stranger.send(conversation_id, "Let me in").status_code == 404
    assert stranger.post(f"{base}/quote", {"model": MODEL, "content": "x"}).status_code == 404
    assert stranger.get(stream_url).status_code == 404
    assert stranger.post(f"{base}/answers/{answer_id}/stop").status_code == 404
    assert stranger.get(f"{base}/export.md").status_code == 404

    messages = _messages(conversation_id)
    assert [(m.role, m.status, m.stop_requested) for m in messages] == [
        ("user", None, False), ("assistant", "pending", False)]  # not claimed, not stopped, nothing added
    assert gateway.sim.log() == [] and _receipts() == []
    assert owner.get(base).status_code == 200  # the owner still has it


def test_a_missing_conversation_or_answer_is_404(owner):
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "Anything")
    missing = conversation_id + 100
    assert owner.get(f"/assistant/{missing}").status_code == 404
    assert owner.get(f"/assistant/{missing}/export.md").status_code == 404
    assert owner.send(missing, "Hello?").status_code == 404
    assert owner.get(f"/assistant/{conversation_id}/answers/{answer_id + 100}/stream").status_code == 404
    question_id = answer_id - 1  # a question is no answer to stream or stop
    assert owner.get(f"/assistant/{conversation_id}/answers/{question_id}/stream").status_code == 404
    assert owner.post(f"/assistant/{conversation_id}/answers/{question_id}/stop").status_code == 404


def test_a_visitor_is_sent_to_sign_in_from_every_assistant_route(app, owner):
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "Owner's question")
    base = f"/assistant/{conversation_id}"
    visitor = Browser(app)
    calls = [("GET", "/assistant"), ("GET", base), ("GET", f"{base}/export.md"),
             ("GET", f"{base}/answers/{answer_id}/stream"), ("POST", "/assistant/conversations"),
             ("POST", f"{base}/messages"), ("POST", f"{base}/quote"), ("POST", f"{base}/answers/{answer_id}/stop")]
    for method, url in calls:
        response = visitor.post(url, {"model": MODEL, "content": "x"}) if method == "POST" else visitor.get(url)
        assert (response.status_code, response.location.split("?")[0]) == (302, "/login"), f"{method} {url}"
    assert len(_messages()) == 2 and _conversation_count() == 1


def test_the_conversation_list_shows_only_ones_own_conversations(app, owner, make_user):
    owner.ask(owner.new_conversation(), "Owner asks about margins")
    stranger = _signed_in(app, make_user, "other@example.com", credit_usd="1")
    stranger.ask(stranger.new_conversation(), "Stranger asks about shipping rates")

    owners_list = owner.get("/assistant").text
    assert "Owner asks about margins" in owners_list and "Stranger asks about shipping rates" not in owners_list
    strangers_list = stranger.get("/assistant").text
    assert "Stranger asks about shipping rates" in strangers_list and "Owner asks about margins" not in strangers_list


# --- CSRF ---------------------------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(owner, gateway):
    conversation_id = owner.new_conversation()
    form = {"model": MODEL, "content": "Forged question", "lane": "any", "data": ""}

    assert owner.post("/assistant/conversations", token=False).status_code == 400
    assert owner.post("/assistant/conversations", {"csrf_token": "forged"}, token=False).status_code == 400
    for htmx in ({}, {"HX-Request": "true"}):
        response = owner.post(f"/assistant/{conversation_id}/messages", form, token=False, headers=htmx)
        assert response.status_code == 400
    assert _conversation_count() == 1
    assert _messages() == [] and _receipts() == [] and gateway.sim.log() == []
    assert gateway.balances() == {"credit": (START_MICROS, 0), "routed": (START_MICROS, 0)}


# --- answering in the request -------------------------------------------------------------------------------


def test_an_answer_without_scripts_is_saved_with_its_receipt_and_charged_once(owner, gateway):
    reply = "Revenue rose **12%** on strong demand."
    gateway.sim.set_fault("primary", reply_text=reply)
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "How did revenue do?")

    answer = _message(answer_id)
    assert (answer.role, answer.status, answer.content, answer.error) == ("assistant", "done", reply, None)
    [receipt] = _receipts()
    assert answer.receipt_id == receipt.id
    assert (receipt.endpoint, receipt.api_key_id, receipt.status) == ("assistant", None, "succeeded")
    assert (receipt.route_channel, receipt.route_lane, receipt.fallback_used) == ("primary", "official", False)
    assert receipt.charge > 0 and _ledger_entry(receipt.ledger_entry_id).amount == -receipt.charge
    assert gateway.balances() == {"credit": (START_MICROS - receipt.charge, 0), "routed": (START_MICROS, 0)}
    assert len(gateway.sim.log()) == 1

    turn = _turn_html(owner.get(f"/assistant/{conversation_id}").text, answer_id)
    assert "<strong>12%</strong>" in turn and f'data-micros="{receipt.charge}"' in turn and receipt.id in turn
    assert_ledger_green()


def test_deleting_a_conversation_keeps_its_receipts_and_only_its_owner_may(app, owner, make_user, gateway):
    conversation_id = owner.new_conversation()
    owner.ask(conversation_id, "How did revenue do?")
    stranger = _signed_in(app, make_user, "stranger@example.com")
    assert stranger.post(f"/assistant/{conversation_id}/delete").status_code == 404
    assert owner.post(f"/assistant/{conversation_id}/delete", token=False).status_code == 400
    assert _conversation_count() == 1 and len(_messages(conversation_id)) == 2

    response = owner.post(f"/assistant/{conversation_id}/delete")
    assert response.status_code == 303 and response.headers["Location"].endswith("/assistant")
    assert _conversation_count() == 0 and _messages(conversation_id) == []
    assert owner.get(f"/assistant/{conversation_id}").status_code == 404
    [receipt] = _receipts()  # the money's record stays
    assert receipt.endpoint == "assistant" and receipt.charge > 0
    assert_ledger_green()


def test_an_answer_whose_process_died_and_was_swept_says_it_was_interrupted(owner, gateway):
    from app.database import write_transaction
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "How did revenue do?")
    [receipt] = _receipts()
    # The rows as a worker killed mid-answer leaves them once `waybill sweep` has settled its hold.
    with write_transaction():
        db.session.execute(db.update(ChatMessage).where(ChatMessage.id == answer_id).values(status="streaming"))
    still_running = _turn_html(owner.get(f"/assistant/{conversation_id}").text, answer_id)
    assert "still streaming in another window" in still_running and "Interrupted" not in still_running
    with write_transaction():
        db.session.execute(db.update(Receipt).where(Receipt.id == receipt.id).values(flags=["review"]))
    swept = _turn_html(owner.get(f"/assistant/{conversation_id}").text, answer_id)
    assert "Interrupted: the server answering this stopped" in swept and "still streaming" not in swept
    assert receipt.id in swept


def test_a_bug_while_relaying_ends_the_answer_and_the_gateway_settles_what_it_delivered(owner, gateway, monkeypatch):
    from app.assistant import chat

    def broken(*args, **kwargs):
        raise RuntimeError("a bug between the gateway and the page")
    monkeypatch.setattr(chat, "choices_text", broken)
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "How did revenue do?")

    answer = _message(answer_id)
    assert (answer.status, answer.content) == ("failed", "")  # never left "streaming"
    assert "internal error" in answer.error
    [receipt] = _receipts()
    assert answer.receipt_id == receipt.id and receipt.status == "interrupted"
    assert gateway.balances()["credit"] == (START_MICROS - receipt.charge, 0)  # the hold is settled, not left reserved
    assert_ledger_green()


def test_when_the_primary_fails_the_backup_answers_and_the_page_says_fallback(owner, gateway):
    gateway.sim.set_fault("primary", status=503)
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "Which route served this?")

    answer = _message(answer_id)
    assert answer.status == "done" and answer.content.startswith("Simulated reply from backup")
    [receipt] = _receipts()
    assert (receipt.status, receipt.fallback_used, receipt.route_channel, receipt.route_lane) == (
        "succeeded", True, "backup", "routed")
    assert [entry["channel"] for entry in gateway.sim.log()] == ["primary", "backup"]
    assert gateway.balances() == {"credit": (START_MICROS, 0), "routed": (START_MICROS - receipt.charge, 0)}
    turn = _turn_html(owner.get(f"/assistant/{conversation_id}").text, answer_id)
    assert 'class="badge fallback"' in turn and "via Backup relay" in turn
    assert_ledger_green()


def test_when_every_route_fails_the_answer_fails_with_its_reason_and_nothing_is_charged(owner, gateway):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=500)
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "Will anyone answer?")

    answer = _message(answer_id)
    assert answer.status == "failed" and answer.content == "" and answer.error
    [receipt] = _receipts()
    assert answer.receipt_id == receipt.id
    assert (receipt.status, receipt.charge) == ("failed", 0)
    assert gateway.balances() == {"credit": (START_MICROS, 0), "routed": (START_MICROS, 0)}
    turn = _turn_html(owner.get(f"/assistant/{conversation_id}").text, answer_id)
    assert 'role="alert">Not answered: ' in turn and str(escape(answer.error)) in turn
    assert_ledger_green()


# --- money and lanes ----------------------------------------------------------------------------------------


def test_a_user_without_money_is_refused_by_the_server_and_nothing_is_saved_or_sent(app, gateway, make_user):
    broke = _signed_in(app, make_user, "broke@example.com")
    conversation_id = broke.new_conversation()
    response = broke.send(conversation_id, "Summarise the filing")
    assert response.status_code == 422
    assert "Nothing was sent" in response.text and "No allowed wallet can cover this message" in response.text
    assert "Summarise the filing" in response.text  # the draft comes back to fix
    assert _messages() == [] and _receipts() == [] and gateway.sim.log() == []
    assert_ledger_green()


def test_routed_money_only_refuses_the_official_lane_and_pays_on_either(app, gateway, make_user):
    routed_only = _signed_in(app, make_user, "routed@example.com", routed_usd="1")
    user_id = _user_id("routed@example.com")
    conversation_id = routed_only.new_conversation()

    refused = routed_only.send(conversation_id, "Credit only, please", lane="official")
    assert refused.status_code == 422 and "Nothing was sent" in refused.text and "your Credit has $0.00" in refused.text
    assert _messages() == [] and gateway.sim.log() == []

    answer_id = routed_only.ask(conversation_id, "Either lane, please", lane="any")
    assert _message(answer_id).status == "done"
    [receipt] = _receipts()
    assert (receipt.route_channel, receipt.route_lane, receipt.user_id) == ("backup", "routed", user_id)
    assert [entry["channel"] for entry in gateway.sim.log()] == ["backup"]  # the uncovered official step is skipped
    assert _balances(user_id) == {"credit": (0, 0), "routed": (1_000_000 - receipt.charge, 0)}
    assert_ledger_green()


# --- what the model is sent ---------------------------------------------------------------------------------


def test_every_call_carries_the_notice_and_a_second_question_carries_the_first_exchange(owner, gateway):
    conversation_id = owner.new_conversation()
    gateway.sim.set_fault("primary", reply_text="Margins widened to 31%.", times=1)
    owner.ask(conversation_id, "How did margins do?")
    gateway.sim.set_fault("primary", reply_text="Guidance was raised.", times=1)
    owner.ask(conversation_id, "And guidance?", data=PRICES_CSV)

    calls = gateway.sim.log("primary")
    assert len(calls) == 2
    for call in calls:
        system = call["body"]["messages"][0]
        assert system["role"] == "system" and "Research support, not financial advice" in system["content"]
    second = calls[-1]["body"]["messages"][1:]
    assert [(m["role"], m["content"]) for m in second[:2]] == [
        ("user", "How did margins do?"), ("assistant", "Margins widened to 31%.")]
    assert second[2]["role"] == "user" and second[2]["content"].startswith("And guidance?")
    assert "2024-01-04,102" in second[2]["content"]  # the pasted data goes along as context
    assert len(second) == 3


# --- once-only answering ------------------------------------------------------------------------------------


def test_a_pending_answer_streams_once_and_a_second_stream_only_reports_it(owner, gateway):
    reply = "Cash flow turned positive this quarter."
    gateway.sim.set_fault("primary", reply_text=reply)
    stream_url = owner.ask_pending(owner.new_conversation(), "What about cash flow?")
    answer_id = int(stream_url.rsplit("/", 2)[1])
    assert _message(answer_id).status == "pending" and gateway.sim.log() == []

    first = _events(owner.get(stream_url))
    assert _deltas(first) == reply and [name for name, _ in first][-1] == "done"
    again = _events(owner.get(stream_url))
    assert [name for name, _ in again] == ["done"]  # the finished answer, not a second call
    assert reply in again[0][1]

    [receipt] = _receipts()
    assert len(gateway.sim.log()) == 1 and _message(answer_id).receipt_id == receipt.id
    assert gateway.balances()["credit"] == (START_MICROS - receipt.charge, 0)
    assert_ledger_green()


def test_two_concurrent_streams_of_one_answer_call_the_upstream_once(owner, gateway, live_server):
    gateway.sim.set_fault("primary", chunk_delay_ms=40, reply_tokens=15)  # about 0.6 s: the streams overlap
    stream_url = owner.ask_pending(owner.new_conversation(), "Stream me twice")
    first = _http_session(live_server, OWNER)
    second = requests.Session()
    second.cookies.update(first.cookies)  # two tabs of one browser
    start, results, failures = threading.Barrier(2, timeout=HTTP_TIMEOUT_S), [], []

    def stream(session: requests.Session) -> None:
        try:
            start.wait()
            response = session.get(f"{live_server}{stream_url}", timeout=HTTP_TIMEOUT_S)
            results.append(list(sse_events(response.text.split("\n"))))
        except Exception as error:  # reported below: an exception in a thread would otherwise vanish
            failures.append(error)

    threads = [threading.Thread(target=stream, args=(session,)) for session in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * HTTP_TIMEOUT_S)
    assert failures == [] and len(results) == 2

    answered, reported = sorted(results, key=lambda events: len(_deltas(events)), reverse=True)
    assert _deltas(answered).startswith("Simulated reply from primary") and answered[-1][0] == "done"
    assert [name for name, _ in reported] == ["done"]
    assert "still streaming in another window" in reported[0][1]  # it came while the other was answering
    assert len(gateway.sim.log()) == 1 and len(_receipts()) == 1
    assert_ledger_green()


# --- stop ---------------------------------------------------------------------------------------------------


def test_stop_ends_a_streaming_answer_and_charges_only_what_was_delivered(owner, gateway, live_server):
    reply_tokens = 300  # 15 s at 50 ms a chunk: only a stop ends it within the test's bounds
    gateway.sim.set_fault("primary", chunk_delay_ms=50, reply_tokens=reply_tokens)
    conversation_id = owner.new_conversation()
    stream_url = owner.ask_pending(conversation_id, "Write at length")
    answer_id = int(stream_url.rsplit("/", 2)[1])
    session = _http_session(live_server, OWNER)
    first_delta, events, failures = threading.Event(), [], []

    def read_stream() -> None:
        try:
            with session.get(f"{live_server}{stream_url}", stream=True, timeout=HTTP_TIMEOUT_S) as response:
                for event in sse_events(response.iter_lines(chunk_size=None, decode_unicode=True)):
                    events.append(event)
                    if event[0] == "delta":
                        first_delta.set()
        except Exception as error:  # reported below: an exception in a thread would otherwise vanish
            failures.append(error)

    reader = threading.Thread(target=read_stream, daemon=True)
    started = time.monotonic()
    reader.start()
    assert first_delta.wait(timeout=HTTP_TIMEOUT_S), failures
    stop = owner.post(f"/assistant/{conversation_id}/answers/{answer_id}/stop")
    assert stop.status_code == 200 and "Stopping" in stop.text
    reader.join(timeout=HTTP_TIMEOUT_S)
    assert not reader.is_alive() and failures == []
    assert time.monotonic() - started < reply_tokens * 0.05 / 2  # ended by the stop, long before the reply would

    assert events[-1][0] == "done"
    answer = _message(answer_id)
    assert answer.status == "stopped" and str(escape(answer.content)) == _deltas(events)
    [receipt] = _receipts()
    assert receipt.status == "interrupted" and 0 < receipt.completion_tokens < reply_tokens and receipt.charge > 0
    assert gateway.balances()["credit"] == (START_MICROS - receipt.charge, 0)
    assert "Charged only for what was delivered" in events[-1][1]
    assert_ledger_green()


# --- export -------------------------------------------------------------------------------------------------


def test_export_is_a_markdown_attachment_with_questions_data_answers_routes_and_charges(owner, gateway):
    reply = "The shares rose 2% over the period."
    gateway.sim.set_fault("primary", reply_text=reply)
    conversation_id = owner.new_conversation()
    owner.ask(conversation_id, "How did the shares move?", data=PRICES_CSV)

    response = owner.get(f"/assistant/{conversation_id}/export.md")
    assert response.status_code == 200 and response.mimetype == "text/markdown"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="waybill-conversation-{conversation_id}.md"')
    text = response.text
    [receipt] = _receipts()
    assert text.startswith("# How did the shares move?\n")
    assert "## Question\n\nHow did the shares move?\n" in text
    assert f"Pasted data:\n\n~~~~\n{PRICES_CSV}\n~~~~\n" in text
    assert f"## Answer ({MODEL})\n\n{reply}\n" in text
    assert "route: Primary (official) (official)" in text
    assert re.search(r"charge: \$0\.0000\d+ ·", text) and f"charge: {usd_text(receipt.charge)} ·" in text
    assert f"receipt {receipt.id}" in text and "Research support, not financial advice" in text


# --- bad data -----------------------------------------------------------------------------------------------


def test_ragged_or_oversized_data_is_refused_with_its_reason_and_nothing_is_saved(owner, gateway):
    conversation_id = owner.new_conversation()
    ragged = owner.send(conversation_id, "Read my table", data=RAGGED_CSV)
    assert ragged.status_code == 422 and "Line 3 has 3 fields; the header has 2" in ragged.text
    oversized = owner.send(conversation_id, "Read my table", data="x" * 20_001)
    assert oversized.status_code == 422
    assert "The pasted data has 20,001 characters; the most is 20,000" in oversized.text
    assert _messages() == [] and _receipts() == [] and gateway.sim.log() == []


SEND_BUTTON = re.compile(r'<button type="submit"( disabled)?>Send</button>')


@pytest.mark.parametrize(("data", "shown"), [
    (RAGGED_CSV, "Line 3 has 3 fields; the header has 2"),
    ("x" * 20_001, "The pasted data has 20,001 characters; the most is 20,000"),
    ("Date,Close\n2024-01-02,100\n2024-01-03,abc", "in the Close column, not a number"),
])
def test_the_live_quote_shows_a_data_error_and_disables_send(owner, gateway, data, shown):
    conversation_id = owner.new_conversation()
    quote = owner.post(f"/assistant/{conversation_id}/quote",
                       {"model": MODEL, "content": "Read my table", "lane": "any", "data": data})
    assert quote.status_code == 200
    assert 'class="form-error data-error"' in quote.text and shown in quote.text
    assert SEND_BUTTON.search(quote.text).group(1) == " disabled"
    assert gateway.sim.log() == [] and _messages() == []


def test_the_live_quote_with_good_data_estimates_and_enables_send(owner, gateway):
    conversation_id = owner.new_conversation()
    quote = owner.post(f"/assistant/{conversation_id}/quote",
                       {"model": MODEL, "content": "Read my table", "lane": "any", "data": PRICES_CSV})
    assert quote.status_code == 200 and "data-error" not in quote.text
    assert "holds up to" in quote.text and "a price series of 3 rows" in quote.text
    assert SEND_BUTTON.search(quote.text).group(1) is None


# --- hostile answers ----------------------------------------------------------------------------------------

HOSTILE_REPLY = ("Read **this** <script>alert(1)</script> then [x](javascript:alert(1)) "
                 "and [ok](https://example.com/a) & <img src=x onerror=alert(2)>")


def test_a_hostile_answer_is_rendered_inert_on_the_conversation_page(owner, gateway):
    gateway.sim.set_fault("primary", reply_text=HOSTILE_REPLY)
    conversation_id = owner.new_conversation()
    answer_id = owner.ask(conversation_id, "Say something hostile")
    assert _message(answer_id).content == HOSTILE_REPLY

    page = owner.get(f"/assistant/{conversation_id}").text
    turn = _turn_html(page, answer_id)
    assert "<strong>this</strong>" in turn and 'href="https://example.com/a"' in turn  # Markdown did render
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in turn
    assert "<script>alert" not in page and "<img" not in page and not JAVASCRIPT_HREF.search(page)


def test_a_hostile_answer_streams_as_escaped_text(owner, gateway):
    gateway.sim.set_fault("primary", reply_text=HOSTILE_REPLY)
    stream_url = owner.ask_pending(owner.new_conversation(), "Say something hostile")
    events = _events(owner.get(stream_url))
    assert _deltas(events) == str(escape(HOSTILE_REPLY))
    done = events[-1]
    assert done[0] == "done" and "&lt;script&gt;alert(1)&lt;/script&gt;" in done[1]
    assert "<script" not in done[1] and "<img" not in done[1] and not JAVASCRIPT_HREF.search(done[1])
