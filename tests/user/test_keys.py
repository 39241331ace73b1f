"""The API keys page: every field of a new key, the key shown once, the list with its limits and spend, revoking."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import openai
import pytest

from app.accounts.models import ApiKey
from app.accounts.service import MAX_RPM, issue_key
from app.database import utcnow
from app.extensions import db
from app.rendering import usd
from tests.conftest import assert_ledger_green, csrf_from, import_config_text, receipt_of

SECRET = re.compile(r'id="new-key-secret">(wb-[^<]+)<')
HX = {"HX-Request": "true"}


def _tomorrow() -> str:
    return (utcnow().date() + timedelta(days=1)).isoformat()


def _keys() -> list[ApiKey]:
    db.session.rollback()
    return list(db.session.scalars(db.select(ApiKey).order_by(ApiKey.id)))


@pytest.fixture
def keys_page(gateway, login_as):
    """The gateway's user signed in; post(**fields) sends the new-key form as the page would."""
    client = login_as("api@example.com")
    token = csrf_from(client.get("/keys").get_data(as_text=True))

    def post(headers=None, **fields):
        fields.setdefault("name", "laptop")
        fields.setdefault("lanes", ["official", "routed"])
        return client.post("/keys", data={"csrf_token": token, **fields}, headers=headers or {})
    post.client = client
    return post


def _secret(response) -> str:
    match = SECRET.search(response.get_data(as_text=True))
    assert match, "the answer shows no new key"
    return match.group(1)


def _sdk(live_server: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=secret, max_retries=0, timeout=30)


def test_the_form_offers_the_published_routed_models_and_both_lanes_ticked(keys_page):
    body = keys_page.client.get("/keys").get_data(as_text=True)
    form = body[body.index('<form method="post" action="/keys"'):]
    assert 'value="gpt-4o-mini"' in form and 'value="text-embedding-3-small"' in form
    assert "None ticked: all models" in form
    lanes = re.findall(r'<input([^>]*)name="lanes"([^>]*)>', form)
    assert len(lanes) == 2 and all("checked" in "".join(attrs) for attrs in lanes)
    # A `required` checkbox must itself be ticked: that is what stopped single-lane keys in the browser.
    assert not any("required" in "".join(attrs) for attrs in lanes)
    assert f'min="{_tomorrow()}"' in form and 'type="date"' in form


UNROUTED_MODEL = """
[[models]]
id = "unrouted-model"
provider = "openai"
input_per_mtok = 1.0
output_per_mtok = 1.0
"""


def test_a_model_without_a_route_is_not_offered(keys_page, tmp_path):
    import_config_text(UNROUTED_MODEL, tmp_path)
    assert 'value="unrouted-model"' not in keys_page.client.get("/keys").get_data(as_text=True)
    response = keys_page(models=["unrouted-model"])
    assert response.status_code == 422 and [key.name for key in _keys()] == ["tests"]


def test_a_key_with_every_field_is_created_and_shown_once(keys_page):
    response = keys_page(name="  CI runner  ", models=["gpt-4o-mini"], lanes=["routed"], expires=_tomorrow(),
                         spend_cap="12.50", rpm="60", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="api-keys">') and "<html" not in body
    key = _keys()[-1]
    assert (key.name, key.models, key.lanes, key.spend_cap, key.rpm_limit) == (
        "CI runner", ["gpt-4o-mini"], ["routed"], 12_500_000, 60)
    assert key.expires_at == datetime.combine(utcnow().date() + timedelta(days=1), datetime.min.time())
    secret = _secret(response)
    assert secret.startswith(key.prefix) and 'data-copy="#new-key-secret"' in body
    assert "http://localhost/v1" in body  # the base URL to use with it
    row = body[body.index(f'id="key-{key.id}"'):]
    row = row[:row.index("</tr>")]
    assert "<code>gpt-4o-mini</code>" in row and "lane-routed" in row and "lane-official" not in row
    assert "expires <time" in row and "60 req/min" in row and "cap $12.50" in row
    assert "$0.00 / $12.50" in row and '<progress value="0" max="12500000"' in row
    assert "never" in row and "key-state-active" in row
    # Shown once: the next look at the page has the key listed, not its secret.
    again = keys_page.client.get("/keys").get_data(as_text=True)
    assert secret not in again and key.prefix in again


def test_empty_optional_fields_make_a_key_for_all_models_on_both_lanes_without_limits(keys_page):
    response = keys_page(name="plain", expires="", spend_cap="", rpm="")
    assert response.status_code == 200
    key = _keys()[-1]
    assert (key.name, key.models, key.lanes, key.expires_at, key.spend_cap, key.rpm_limit) == (
        "plain", None, ["official", "routed"], None, None, None)
    row = response.get_data(as_text=True).split(f'id="key-{key.id}"')[1].split("</tr>")[0]
    assert "<em>all models</em>" in row and "lane-official" in row and "lane-routed" in row
    assert "<progress" not in row and "none" in row


@pytest.mark.parametrize("fields, stored", [
    ({"lanes": ["official"]}, {"lanes": ["official"]}),
    ({"lanes": ["routed"]}, {"lanes": ["routed"]}),
    ({"models": ["gpt-4o-mini", "text-embedding-3-small"]}, {"models": ["gpt-4o-mini", "text-embedding-3-small"]}),
    ({"spend_cap": "0.000001"}, {"spend_cap": 1}),
    ({"spend_cap": " 1000000 "}, {"spend_cap": 1_000_000_000_000}),
    ({"rpm": "1"}, {"rpm_limit": 1}),
    ({"rpm": str(MAX_RPM)}, {"rpm_limit": MAX_RPM}),
    ({"name": "x" * 100}, {"name": "x" * 100}),
], ids=["official-only", "routed-only", "two-models", "smallest-cap", "largest-cap", "rpm-1", "rpm-max", "long-name"])
def test_good_values_are_kept(keys_page, fields, stored):
    assert keys_page(**fields).status_code == 200
    key = _keys()[-1]
    assert {name: getattr(key, name) for name in stored} == stored


BAD = {
    "name-empty": ("name", "", "Name the key"),
    "name-blank": ("name", "   ", "Name the key"),
    "name-too-long": ("name", "x" * 101, "100 characters"),
    "model-unknown": ("models", ["gpt-9"], "&#39;gpt-9&#39; is not a published model with a route"),
    "lanes-none": ("lanes", [], "Tick at least one lane"),
    "lane-unknown": ("lanes", ["express"], "&#39;express&#39; is not a lane"),
    "expires-past": ("expires", "2020-01-01", "Pick a date after today"),
    "expires-today": ("expires", None, "Pick a date after today"),
    "expires-not-a-date": ("expires", "next week", "Not a valid date"),
    "expires-no-such-day": ("expires", "2099-02-30", "Not a valid date"),
    "cap-zero": ("spend_cap", "0", "must be more than $0"),
    "cap-negative": ("spend_cap", "-5", "cannot be negative"),
    "cap-words": ("spend_cap", "ten", "not a USD amount"),
    "cap-exponent": ("spend_cap", "1e3", "not a USD amount"),
    "cap-too-precise": ("spend_cap", "0.0000001", "more precision than one micro-USD"),
    "cap-too-large": ("spend_cap", "1000000.01", "more than the maximum of $1,000,000"),
    "rpm-zero": ("rpm", "0", f"from 1 to {MAX_RPM:,}"),
    "rpm-negative": ("rpm", "-3", f"from 1 to {MAX_RPM:,}"),
    "rpm-too-large": ("rpm", str(MAX_RPM + 1), f"from 1 to {MAX_RPM:,}"),
    "rpm-fraction": ("rpm", "1.5", "Not a valid integer"),
    "rpm-words": ("rpm", "lots", "Not a valid integer"),
}


@pytest.mark.parametrize("name, value, message", BAD.values(), ids=BAD.keys())
def test_a_bad_value_is_refused_on_its_field_and_nothing_is_created(keys_page, name, value, message):
    before = _keys()
    value = utcnow().date().isoformat() if value is None else value
    response = keys_page(**{name: value}, headers=HX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="api-keys">')
    assert message in body
    assert "new-key-secret" not in body and "<details class=\"new-key\" open>" in body
    assert _keys() == before


def test_the_error_sits_on_its_field_and_the_typed_values_stay(keys_page):
    body = keys_page(name="keep me", spend_cap="ten", rpm="30").get_data(as_text=True)
    cap = body[body.index('<label for="spend_cap">'):]
    assert cap.index('aria-invalid="true"') < cap.index("</label>") < cap.index("not a USD amount")
    assert 'value="ten"' in body and 'value="keep me"' in body and 'value="30"' in body
    assert "<html" in body  # a plain POST, without htmx, gets the whole page back


def test_creating_a_key_needs_the_csrf_token(keys_page):
    before = _keys()
    response = keys_page.client.post("/keys", data={"name": "forged", "lanes": ["routed"]})
    assert response.status_code == 400
    assert _keys() == before


def test_a_plain_post_without_javascript_answers_the_whole_page_with_the_key(keys_page):
    response = keys_page(name="no-js")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in body and "<h1>API keys</h1>" in body
    assert _secret(response).startswith(_keys()[-1].prefix)


def test_a_routed_only_key_made_on_the_page_is_refused_the_official_lane(keys_page, live_server, gateway):
    client = _sdk(live_server, _secret(keys_page(name="routed only", lanes=["routed"])))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Which lane?"}], max_tokens=20)
    assert raw.headers["X-Waybill-Route"] == "backup" and raw.headers["X-Waybill-Settlement"] == "routed"
    receipt = receipt_of(client, raw.headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "skipped", "lane_not_allowed"), ("backup", "ok", None)]
    assert receipt["ledger_entry"]["wallet"] == "routed"
    assert gateway.balances()["credit"] == (10_000_000, 0)
    assert gateway.sim.log("primary") == []  # the official channel was never called
    assert_ledger_green()


def test_an_official_only_key_made_on_the_page_never_falls_back_to_the_routed_lane(keys_page, live_server, gateway):
    client = _sdk(live_server, _secret(keys_page(name="official only", lanes=["official"])))
    gateway.sim.set_fault("primary", status=503)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=20)
    receipt = receipt_of(client, failed.value.response.headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "error", "upstream_5xx"), ("backup", "skipped", "lane_not_allowed")]
    assert gateway.balances()["routed"] == (10_000_000, 0)


def test_the_scope_picked_on_the_page_limits_the_models_the_key_sees_and_uses(keys_page, live_server):
    client = _sdk(live_server, _secret(keys_page(name="embeddings", models=["text-embedding-3-small"])))
    assert [model.id for model in client.models.list()] == ["text-embedding-3-small"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_allowed"
    unscoped = _sdk(live_server, _secret(keys_page(name="everything")))
    assert [model.id for model in unscoped.models.list()] == ["gpt-4o-mini", "text-embedding-3-small"]


def test_spend_shows_against_the_cap_and_alone_without_one(keys_page, live_server):
    capped = _sdk(live_server, _secret(keys_page(name="capped", spend_cap="0.50")))
    uncapped = _sdk(live_server, _secret(keys_page(name="uncapped")))
    charges = {}
    for name, client in (("capped", capped), ("uncapped", uncapped)):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "What does this cost?"}], max_tokens=50)
        charges[name] = round(float(receipt_of(client, raw.headers["X-Waybill-Receipt"])["charge_usd"]) * 1_000_000)
    assert all(charge > 0 for charge in charges.values())
    db.session.rollback()  # the test client's requests share this test's session: drop what it read before
    body = keys_page.client.get("/keys").get_data(as_text=True)
    rows = {key.name: body.split(f'id="key-{key.id}"')[1].split("</tr>")[0] for key in _keys() if key.name != "tests"}
    assert f"{usd(charges['capped'])} / $0.50" in rows["capped"]
    assert f'<progress value="{charges["capped"]}" max="500000"' in rows["capped"]
    assert usd(charges["uncapped"]) in rows["uncapped"] and "<progress" not in rows["uncapped"]
    assert "just now" in rows["capped"] and "just now" in rows["uncapped"]  # last used


def test_states_active_expired_and_revoked_are_listed(keys_page, clock, gateway):
    keys_page(name="short-lived", expires=_tomorrow())
    clock.advance(2 * 86_400)
    body = keys_page.client.get("/keys").get_data(as_text=True)
    key = next(k for k in _keys() if k.name == "short-lived")
    row = body.split(f'id="key-{key.id}"')[1].split("</tr>")[0]
    assert "key-state-expired" in row and "expired <time" in row and "Revoke" in row


def test_revoking_confirms_flashes_out_of_band_and_keeps_the_key_listed(keys_page):
    keys_page(name="to revoke")
    key = _keys()[-1]
    page = keys_page.client.get("/keys").get_data(as_text=True)
    row = page.split(f'id="key-{key.id}"')[1].split("</tr>")[0]
    assert "hx-confirm=" in row and "htmx-indicator" in row and f'action="/keys/{key.id}/revoke"' in row
    response = keys_page.client.post(f"/keys/{key.id}/revoke", data={"csrf_token": csrf_from(page)}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<section id="api-keys">')
    assert 'hx-swap-oob="innerHTML"' in body and "Key revoked" in body
    row = body.split(f'id="key-{key.id}"')[1].split("</tr>")[0]
    assert "key-state-revoked" in row and "Revoke</button>" not in row
    assert _keys()[-1].revoked


def test_revoking_needs_the_csrf_token_and_ones_own_key(keys_page, make_user):
    other = issue_key(make_user("other@example.com"), "theirs").key
    keys_page(name="mine")
    mine = _keys()[-1]
    token = csrf_from(keys_page.client.get("/keys").get_data(as_text=True))
    assert keys_page.client.post(f"/keys/{mine.id}/revoke").status_code == 400
    assert keys_page.client.post(f"/keys/{other.id}/revoke", data={"csrf_token": token}).status_code == 404
    assert not any(key.revoked for key in _keys())


def test_a_user_without_keys_sees_an_empty_state_and_the_form_open(login_as):
    body = login_as("fresh@example.com").get("/keys").get_data(as_text=True)
    assert '<p class="empty">No keys yet' in body and '<details class="new-key" open>' in body
    assert "None ticked: all models" in body
