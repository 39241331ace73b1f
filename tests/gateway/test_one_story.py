"""A request tells one story: headers, receipt and error message never contradict each other."""
from __future__ import annotations

import openai
import pytest

from app.billing.pricing import Price, Usage, charge_micros
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green, receipt_of

CHEAP_CONFIG = """
[[models]]
id = "gpt-4o-nano-sim"
name = "A cheaper model a relay may substitute"
provider = "openai"
input_per_mtok = 0.05
output_per_mtok = 0.10

[[models]]
id = "gpt-4o-sim-pricey"
name = "A dearer model a relay may substitute"
provider = "openai"
input_per_mtok = 5.0
output_per_mtok = 20.0
"""
MINI = Price(150_000, 600_000, 75_000)


def _chat(client, **extra):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell one story"}], **extra)


def test_a_502_names_no_route_and_says_it_fell_back(openai_client, gateway):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=500)
    with pytest.raises(openai.APIStatusError) as error:
        _chat(openai_client)
    headers = error.value.response.headers
    assert error.value.status_code == 502
    assert "X-Waybill-Route" not in headers and "X-Waybill-Settlement" not in headers
    assert headers["X-Waybill-Attempts"] == "2"
    assert headers["x-should-retry"] == "false"
    receipt = receipt_of(openai_client, headers["X-Waybill-Receipt"])
    assert (receipt["route"], receipt["settlement"], receipt["upstream_model"]) == (None, None, None)
    assert (receipt["status"], receipt["failure_stage"], receipt["fallback_used"]) == (
        "failed", "after_fallback", True)
    assert receipt["error"] == error.value.body["message"]
    assert_ledger_green()


def test_a_502_at_the_primary_alone_did_not_fall_back(openai_client, gateway, app, tmp_path):
    from tests.conftest import GATEWAY_CONFIG, import_config_text
    import_config_text(GATEWAY_CONFIG.format(sim=gateway.sim.root).replace(
        'channels = ["primary", "backup"]', 'channels = ["primary"]'), tmp_path)
    gateway.sim.set_fault("primary", status=503)
    with pytest.raises(openai.APIStatusError) as error:
        _chat(openai_client)
    receipt = receipt_of(openai_client, error.value.response.headers["X-Waybill-Receipt"])
    assert (receipt["failure_stage"], receipt["fallback_used"]) == ("primary", False)


def test_a_skipped_primary_served_by_the_backup_is_a_fallback(openai_client, gateway, app):
    from app.extensions import db
    from app.routing.models import Channel
    from app.routing.planner import forget_cached_routes
    db.session.scalar(db.select(Channel).where(Channel.name == "primary")).enabled = False
    db.session.commit()
    forget_cached_routes()
    raw = _chat(openai_client)
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["fallback_used"] is True
    assert receipt["route"]["channel"] == "backup"


def test_the_openai_sdk_does_not_retry_a_502(gateway, live_server):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=503)
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=gateway.key, max_retries=2, timeout=30)
    with pytest.raises(openai.APIStatusError):
        _chat(client)
    from app.extensions import db
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count(Receipt.id))) == 1
    assert len(gateway.sim.log("primary")) + len(gateway.sim.log("backup")) == 2


def test_a_503_after_a_trip_says_when_the_soonest_cooldown_ends(openai_client, gateway):
    gateway.sim.set_fault("primary", status=500)
    gateway.sim.set_fault("backup", status=500)
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as error:
            _chat(openai_client)
    assert error.value.status_code == 502
    assert 29 <= int(error.value.response.headers["Retry-After"]) <= 31  # the third failure tripped both
    assert_ledger_green()


def test_a_served_answer_names_the_model_that_answered(openai_client, gateway):
    gateway.sim.set_fault("primary", served_model="gpt-4o-mini-2024-07-18")
    raw = _chat(openai_client)
    assert raw.headers["X-Waybill-Upstream-Model"] == "gpt-4o-mini-2024-07-18"
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["upstream_model"] == "gpt-4o-mini-2024-07-18"
    assert receipt["flags"] == []


@pytest.mark.parametrize("served, price_model, price", [
    ("gpt-4o-nano-sim", "gpt-4o-nano-sim", Price(50_000, 100_000, 50_000)),
    ("gpt-4o-sim-pricey", "gpt-4o-mini", MINI),
    ("some-unknown-model", "gpt-4o-mini", MINI),
])
@pytest.mark.parametrize("stream", [False, True])
def test_a_substituted_model_is_never_charged_above_its_own_price(openai_client, gateway, tmp_path,
                                                                    served, price_model, price, stream):
    from tests.conftest import import_config_text
    import_config_text(CHEAP_CONFIG, tmp_path)
    gateway.sim.set_fault("primary", served_model=served)
    raw = _chat(openai_client, stream=stream, stream_options={"include_usage": True} if stream else None)
    if stream:
        list(raw.parse())
    assert raw.headers["X-Waybill-Upstream-Model"] == served
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["upstream_model"] == served
    assert "model_mismatch" in receipt["flags"]
    assert receipt["price"]["model"] == price_model
    usage = Usage(receipt["usage"]["prompt_tokens"], receipt["usage"]["completion_tokens"])
    assert int(receipt["charge_usd"].replace(".", "")) == charge_micros(usage, price)
    assert_ledger_green()


def test_a_stream_cut_mid_way_is_an_error_attempt_and_says_so(openai_client, gateway):
    gateway.sim.set_fault("primary", cut_after=3)
    raw = _chat(openai_client, stream=True)
    with pytest.raises(openai.APIError):
        list(raw.parse())
    receipt_id = raw.headers["X-Waybill-Receipt"]
    from tests.gateway.test_streaming import _final_receipt
    receipt = _final_receipt(openai_client, receipt_id)
    attempt = receipt["attempts"][-1]
    assert (attempt["outcome"], attempt["error_class"]) == ("error", "connect")
    delivered = len(gateway.sim.log("primary")) and attempt["detail"].split()[2]
    assert attempt["detail"].startswith(f"cut after {delivered} chunks: ") and int(delivered) >= 3
    assert (receipt["status"], receipt["failure_stage"]) == ("interrupted", "mid_stream")
    assert f"failed mid-stream after {delivered} chunks" in receipt["error"]
    assert receipt["route"]["channel"] == "primary"  # it did serve, in part, and was charged for that part
    assert_ledger_green()


def test_the_receipt_writer_redacts_credentials_whatever_the_caller_passes(gateway, app):
    from app.gateway.flight import FailureStage, Flight, ReceiptStatus, finish
    from app.gateway.principal import Principal
    from app.extensions import db
    flight = Flight(Principal(user_id=gateway.user_id, api_key_id=None), "chat", "gpt-4o-mini", False)
    finish(flight, ReceiptStatus.FAILED, FailureStage.PRIMARY, "upstream said: bad key sk-live-0123456789abcdef")
    db.session.rollback()
    stored = db.session.get(Receipt, flight.receipt_id).error_message
    assert "0123456789abcdef" not in stored and "[redacted]" in stored


def test_an_unexpected_error_after_the_hold_voids_it_and_answers_500_with_the_receipt(openai_client, gateway,
                                                                                        monkeypatch):
    from app.gateway import service

    def broken(*args, **kwargs):
        raise RuntimeError("a bug between the hold and the answer")
    monkeypatch.setattr(service, "choices_text", broken)
    with pytest.raises(openai.InternalServerError) as error:
        _chat(openai_client)
    receipt_id = error.value.response.headers["X-Waybill-Receipt"]
    assert receipt_id in error.value.body["message"]
    receipt = receipt_of(openai_client, receipt_id)
    assert (receipt["status"], receipt["charge_usd"], receipt["route"]) == ("failed", "0.000000", None)
    assert gateway.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()


def test_an_unexpected_error_inside_a_stream_still_settles_what_was_delivered(openai_client, gateway,
                                                                               monkeypatch):
    from app.gateway import service
    beats = {"n": 0}

    def beat_then_break(self, delivered):
        beats["n"] += 1
        if beats["n"] == 3:
            raise RuntimeError("a bug mid-stream")
    monkeypatch.setattr(service._Heartbeat, "beat", beat_then_break)
    raw = _chat(openai_client, stream=True)
    with pytest.raises(Exception):
        list(raw.parse())
    from tests.gateway.test_streaming import _final_receipt
    receipt = _final_receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert (receipt["status"], receipt["failure_stage"]) == ("interrupted", "mid_stream")
    assert receipt["attempts"][-1]["outcome"] == "error"
    assert gateway.balances()["credit"][1] == 0, "the hold ended"
    assert_ledger_green()


def test_underpaid_is_flagged_when_the_wallet_cannot_pay_the_usage(gateway, live_server, make_user):
    from app.accounts.service import issue_key
    user = make_user("poor@example.com", credit_usd="0.001")
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=issue_key(user, "poor", lanes=["official"]).secret,
                           max_retries=0)
    # The hold covers the estimated prompt; the upstream's tokenizer counts 20,000 prompt tokens ($0.003).
    gateway.sim.set_fault("primary", prompt_tokens=20_000)
    raw = _chat(client, max_tokens=10)
    receipt = receipt_of(client, raw.headers["X-Waybill-Receipt"])
    assert "underpaid" in receipt["flags"]
    assert receipt["charge_usd"] == "0.001000"
    assert_ledger_green()


def test_a_route_step_without_a_mapping_is_skipped_as_no_mapping(openai_client, gateway, app):
    from app.extensions import db
    from app.routing.models import Channel
    from app.routing.planner import forget_cached_routes
    db.session.scalar(db.select(Channel).where(Channel.name == "primary")).model_map = {}
    db.session.commit()
    forget_cached_routes()
    receipt = receipt_of(openai_client, _chat(openai_client).headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "skipped", "no_mapping"), ("backup", "ok", None)]
    assert gateway.sim.log("primary") == []
