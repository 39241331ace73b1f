"""Streaming: usage passed on only when asked, fallback before the first byte, cuts and disconnects billed."""
from __future__ import annotations

import json
import time
from fractions import Fraction

import openai
import pytest
import requests

from app.billing.pricing import Price, Usage, charge_micros, format_usd
from app.gateway.parsing import estimate_tokens
from app.simulator.wire import count_tokens, reply_words
from tests.conftest import assert_ledger_green

MINI = Price(150_000, 600_000, 75_000)
PRIMARY_MODEL = "gpt-4o-mini-2024-07-18"
QUESTION = "Where does my stream go?"
START = 10_000_000


def _stream(client, **extra):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True, **extra)


def _receipt(client, receipt_id: str) -> dict:
    return client.get(f"/receipts/{receipt_id}", cast_to=object)


def _final_receipt(client, receipt_id: str) -> dict:
    """The receipt once settled: an in-flight row reads interrupted with no failure stage."""
    receipt: dict = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receipt = _receipt(client, receipt_id)
        if receipt["failure_stage"] is not None or receipt["status"] != "interrupted":
            break
        time.sleep(0.05)
    return receipt


def _text(chunks) -> str:
    return "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)


def _charge_entries(receipt_id: str) -> list[int]:
    """Amounts of every charge ledger entry posted against this receipt's hold."""
    from app.billing.models import LedgerEntry
    from app.extensions import db
    from app.gateway.models import Receipt
    db.session.rollback()
    hold_id = db.session.get(Receipt, receipt_id).hold_id
    assert hold_id is not None
    return list(db.session.scalars(db.select(LedgerEntry.amount).where(
        LedgerEntry.hold_id == hold_id, LedgerEntry.kind == "charge")))


def _micros(usd: str) -> int:
    from app.billing.pricing import parse_usd
    return parse_usd(usd)


def test_stream_with_include_usage_passes_the_usage_chunk_and_charges_it(openai_client, gateway):
    raw = _stream(openai_client, stream_options={"include_usage": True})
    assert raw.headers["X-Waybill-Route"] == "primary"
    assert raw.headers["X-Waybill-Attempts"] == "1"
    assert raw.headers["X-Waybill-Settlement"] == "official"
    receipt_id = raw.headers["X-Waybill-Receipt"]
    assert receipt_id.startswith("rcpt_")
    chunks = list(raw.parse())

    assert _text(chunks) == "".join(reply_words("primary", PRIMARY_MODEL, 12))
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1], "exactly one usage chunk, at the end"
    usage = with_usage[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (count_tokens(QUESTION), 12)

    receipt = _final_receipt(openai_client, receipt_id)
    expected = charge_micros(Usage(usage.prompt_tokens, usage.completion_tokens), MINI)
    assert receipt["stream"] is True
    assert (receipt["status"], receipt["failure_stage"], receipt["fallback_used"]) == ("succeeded", None, False)
    assert receipt["usage"] == {"prompt_tokens": usage.prompt_tokens, "completion_tokens": 12,
                                "cached_tokens": 0, "source": "reported"}
    assert receipt["charge_usd"] == format_usd(expected)
    assert receipt["ledger_entry"]["wallet"] == "credit"
    assert receipt["ledger_entry"]["amount_usd"] == f"-{format_usd(expected)}"
    assert _charge_entries(receipt_id) == [-expected]
    assert gateway.balances() == {"credit": (START - expected, 0), "routed": (START, 0)}
    assert_ledger_green()


def test_stream_without_include_usage_hides_usage_but_still_bills_the_reported_usage(openai_client, gateway):
    raw = _stream(openai_client)
    receipt_id = raw.headers["X-Waybill-Receipt"]
    chunks = list(raw.parse())

    assert chunks, "the stream delivered chunks"
    assert _text(chunks) == "".join(reply_words("primary", PRIMARY_MODEL, 12))
    assert [c for c in chunks if c.usage is not None] == [], "no chunk may carry usage the client did not ask for"
    upstream = gateway.sim.log("primary")
    assert len(upstream) == 1
    assert upstream[0]["body"]["stream_options"]["include_usage"] is True, "Waybill always asks upstream for usage"

    receipt = _final_receipt(openai_client, receipt_id)
    expected = charge_micros(Usage(count_tokens(QUESTION), 12), MINI)
    assert receipt["stream"] is True and receipt["status"] == "succeeded"
    assert receipt["usage"]["source"] == "reported"
    assert (receipt["usage"]["prompt_tokens"], receipt["usage"]["completion_tokens"]) == (count_tokens(QUESTION), 12)
    assert receipt["charge_usd"] == format_usd(expected)
    assert gateway.balances() == {"credit": (START - expected, 0), "routed": (START, 0)}
    assert_ledger_green()


@pytest.mark.parametrize("fault, error_class", [({"status": 503}, "upstream_5xx"), ({"drop": True}, "connect")],
                         ids=["503", "drop"])
def test_primary_failing_before_the_first_byte_falls_back_in_a_stream(openai_client, gateway, fault, error_class):
    gateway.sim.set_fault("primary", **fault)
    raw = _stream(openai_client, stream_options={"include_usage": True})
    assert raw.headers["X-Waybill-Route"] == "backup"
    assert raw.headers["X-Waybill-Attempts"] == "2"
    assert raw.headers["X-Waybill-Settlement"] == "routed"
    chunks = list(raw.parse())
    assert _text(chunks) == "".join(reply_words("backup", "gpt-4o-mini", 12))

    receipt = _final_receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert (receipt["status"], receipt["stream"], receipt["fallback_used"]) == ("succeeded", True, True)
    assert receipt["route"]["channel"] == "backup"
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "error", error_class), ("backup", "ok", None)]
    expected = charge_micros(Usage(count_tokens(QUESTION), 12), MINI, Fraction(3, 2))
    assert receipt["charge_usd"] == format_usd(expected)
    assert receipt["ledger_entry"]["wallet"] == "routed"
    assert gateway.balances() == {"credit": (START, 0), "routed": (START - expected, 0)}
    assert_ledger_green()


def test_a_mid_stream_cut_ends_with_an_error_event_and_bills_what_was_delivered(openai_client, gateway):
    gateway.sim.set_fault("primary", cut_after=3)
    raw = _stream(openai_client, stream_options={"include_usage": True})
    receipt_id = raw.headers["X-Waybill-Receipt"]
    assert raw.headers["X-Waybill-Route"] == "primary"
    received: list[str] = []
    with pytest.raises(openai.APIError) as error:
        for chunk in raw.parse():
            received.extend(c.delta.content or "" for c in chunk.choices)
    delivered = "".join(received)
    assert delivered == "".join(reply_words("primary", PRIMARY_MODEL, 3)), "the content before the cut arrives"
    assert receipt_id in error.value.message, "the error event names the receipt"

    receipt = _final_receipt(openai_client, receipt_id)
    assert (receipt["status"], receipt["failure_stage"]) == ("interrupted", "mid_stream")
    assert receipt["stream"] is True and receipt["fallback_used"] is False
    assert receipt["route"]["channel"] == "primary"
    assert receipt["usage"]["source"] == "estimated"
    assert receipt["usage"]["completion_tokens"] == estimate_tokens(delivered)
    charge = _micros(receipt["charge_usd"])
    assert charge > 0
    assert charge == charge_micros(Usage(receipt["usage"]["prompt_tokens"], receipt["usage"]["completion_tokens"]),
                                   MINI)
    assert receipt["ledger_entry"]["amount_usd"] == f"-{receipt['charge_usd']}"
    assert _charge_entries(receipt_id) == [-charge]
    assert gateway.sim.log("backup") == [], "no fallback once bytes reached the client"
    assert gateway.balances() == {"credit": (START - charge, 0), "routed": (START, 0)}
    assert_ledger_green()


def _sse_events(response: requests.Response):
    """Yield the data of each SSE event as bytes arrive."""
    buffer = b""
    for piece in response.iter_content(chunk_size=None):
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.decode().splitlines():
                if line.startswith("data:"):
                    yield line[5:].strip()


def test_a_client_disconnect_settles_the_delivered_part_and_releases_the_hold(gateway, live_server, openai_client):
    gateway.sim.set_fault("primary", chunk_delay_ms=200, reply_tokens=50)
    response = requests.post(f"{live_server}/v1/chat/completions", stream=True, timeout=30,
                             headers={"Authorization": f"Bearer {gateway.key}"},
                             json={"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": QUESTION}]})
    assert response.status_code == 200
    receipt_id = response.headers["X-Waybill-Receipt"]
    assert response.headers["X-Waybill-Route"] == "primary"
    received: list[str] = []
    for data in _sse_events(response):
        chunk = json.loads(data)
        received.extend((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or [])
        if len([t for t in received if t]) >= 2:
            break
    response.close()
    assert "".join(received), "some content arrived before the disconnect"

    receipt = _final_receipt(openai_client, receipt_id)
    assert (receipt["status"], receipt["failure_stage"]) == ("interrupted", "client_disconnected")
    assert receipt["usage"]["source"] == "estimated"
    assert receipt["usage"]["completion_tokens"] >= estimate_tokens("".join(received))

    charge = _micros(receipt["charge_usd"])
    full_reply = "".join(reply_words("primary", PRIMARY_MODEL, 50))
    full_charge = charge_micros(Usage(receipt["usage"]["prompt_tokens"], estimate_tokens(full_reply)), MINI)
    assert 0 < charge < full_charge, "only the delivered part is billed"
    assert _charge_entries(receipt_id) == [-charge]
    assert gateway.balances() == {"credit": (START - charge, 0), "routed": (START, 0)}
    assert_ledger_green()


def test_a_stream_without_upstream_usage_is_estimated_and_charged_once(openai_client, gateway):
    gateway.sim.set_fault("primary", omit_usage=True)
    raw = _stream(openai_client, stream_options={"include_usage": True})
    receipt_id = raw.headers["X-Waybill-Receipt"]
    chunks = list(raw.parse())
    delivered = _text(chunks)
    assert delivered == "".join(reply_words("primary", PRIMARY_MODEL, 12))

    receipt = _final_receipt(openai_client, receipt_id)
    assert (receipt["status"], receipt["failure_stage"]) == ("succeeded", None)
    assert receipt["usage"]["source"] == "estimated"
    assert receipt["usage"]["completion_tokens"] == estimate_tokens(delivered)
    charge = _micros(receipt["charge_usd"])
    assert charge == charge_micros(Usage(receipt["usage"]["prompt_tokens"], receipt["usage"]["completion_tokens"]),
                                   MINI)
    assert charge > 0
    assert _charge_entries(receipt_id) == [-charge], "charged exactly once"
    assert gateway.balances() == {"credit": (START - charge, 0), "routed": (START, 0)}
    assert_ledger_green()


def test_the_receipt_is_final_once_the_client_has_read_the_whole_stream(gateway, live_server):
    # A client that has read [DONE] (or the error event) and then looks at its receipt must see the
    # settled one, not the in-flight row. Read the database at once, and in several rounds, so a
    # settlement that happens after the stream's end is caught rather than won by luck.
    from app.extensions import db
    from app.gateway.models import Receipt
    seen = []
    for round_number in range(6):
        if round_number % 2:
            gateway.sim.set_fault("primary", cut_after=2, times=1)
        response = requests.post(f"{live_server}/v1/chat/completions", stream=True, timeout=30,
                                 headers={"Authorization": f"Bearer {gateway.key}"},
                                 json={"model": "gpt-4o-mini", "stream": True, "messages": [
                                     {"role": "user", "content": QUESTION}]})
        receipt_id = response.headers["X-Waybill-Receipt"]
        last = None
        for data in _sse_events(response):
            last = data
            if data == "[DONE]" or "error" in json.loads(data):
                db.session.rollback()
                receipt = db.session.get(Receipt, receipt_id)
                seen.append((receipt.status, receipt.failure_stage))
                break
        response.close()
        assert last is not None
    assert seen == [("succeeded", None), ("interrupted", "mid_stream")] * 3
    assert_ledger_green()
