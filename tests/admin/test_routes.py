"""/admin/routes: cards in order with warnings, reorder validated and atomic, steps added and removed, audited."""
from __future__ import annotations

import re
from html import unescape

import pytest
from werkzeug.datastructures import MultiDict

from app.audit_trail.models import AuditEvent
from app.database import utcnow
from app.extensions import db
from app.providers.base import ErrorClass
from app.routing.health import record_failure
from app.routing.models import Channel, RouteStep
from app.routing.planner import plan
from tests.conftest import csrf_from, import_config_text, receipt_of

# Around the gateway's world: a keyless relay, a disabled one, an unmapped one, a model with no route.
EXTRA = """
[[models]]
id = "gemini-2.5-flash"
provider = "gemini"
input_per_mtok = 0.3
output_per_mtok = 2.5

[[models]]
id = "lonely-model"
provider = "openai"
input_per_mtok = 1.0
output_per_mtok = 1.0

[[channels]]
name = "keyless"
label = "Keyless relay"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/keyless/v1"
api_key_env = "WAYBILL_TEST_NEVER_SET"
lane = "routed"
[channels.models]
"gpt-4o-mini" = "openai/gpt-4o"

[[channels]]
name = "off"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/off/v1"
api_key = "sk-off-3333"
lane = "routed"
enabled = false
[channels.models]
"gemini-2.5-flash" = "gemini-2.5-flash"

[[channels]]
name = "unmapped"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/unmapped/v1"
api_key = "sk-unmapped-4444"
lane = "routed"
[channels.models]
"other" = "other"

[[routes]]
model = "gemini-2.5-flash"
channels = ["off", "unmapped"]
"""


@pytest.fixture
def admin(gateway, login_as):
    return login_as("admin@example.com", admin=True)


def _order(model_id: str = "gpt-4o-mini") -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Channel.name).join(RouteStep).where(RouteStep.model_id == model_id)
                                   .order_by(RouteStep.position)))


def _events() -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id)))


def _post(client, url: str, data: dict | list, htmx: bool = True):
    token = csrf_from(client.get("/admin/routes").get_data(as_text=True))
    fields = list(data.items()) if isinstance(data, dict) else list(data)
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(url, data=MultiDict(fields + [("csrf_token", token)]), headers=headers)


def _card(html: str, dom_id: str) -> str:
    return html.split(f'<article id="{dom_id}"')[1].split("</article>")[0]


def test_each_model_has_a_card_with_its_steps_in_order(admin):
    html = admin.get("/admin/routes").get_data(as_text=True)
    card = _card(html, "route-gpt-4o-mini")
    assert card.index("Primary (official)") < card.index("Backup relay")
    assert "lane-official" in card and "lane-routed" in card and "health-healthy" in card
    assert "gpt-4o-mini-2024-07-18" in card
    assert re.findall(r'name="channel" value="([^"]+)"', card.split("</form>")[0]) == ["primary", "backup"]
    assert 'hx-trigger="end"' in card and 'hx-post="/admin/routes/gpt-4o-mini/order"' in card
    assert "drag-handle" in card
    assert "vendor/sortable/Sortable.min.js" in html and "admin.js" in html


def test_warnings_name_every_unusable_step_and_route_and_published_models_without_one(admin, tmp_path):
    import_config_text(EXTRA, tmp_path)
    import_config_text('[[routes]]\nmodel = "gpt-4o-mini"\nchannels = ["primary", "backup", "keyless"]\n', tmp_path)
    record_failure(db.session.scalar(db.select(Channel.id).where(Channel.name == "backup")), ErrorClass.RATE_LIMITED)
    html = unescape(admin.get("/admin/routes").get_data(as_text=True))
    mini = _card(html, "route-gpt-4o-mini")
    keyless = mini.split('data-channel="keyless"')[1]
    assert "health-key-missing" in keyless and "key missing: skipped" in keyless
    assert "serves openai/gpt-4o, not the primary's gpt-4o-mini-2024-07-18" in keyless
    backup = mini.split('data-channel="backup"')[1].split('data-channel="keyless"')[0]
    assert "cooling for 30 s" in backup and "health-cooling" in backup
    assert "not the primary's" not in backup  # gpt-4o-mini and its dated snapshot are the same model
    gemini = _card(html, "route-gemini-2_5-flash")
    assert "disabled: skipped" in gemini and "no mapping for gemini-2.5-flash: skipped" in gemini
    assert "no usable step: every step is disabled, keyless or unmapped" in gemini
    top = html.split('id="unrouted-models"')[1].split("</p>")[0]
    assert "lonely-model" in top and "gpt-4o-mini" not in top and "503" in top
    assert "no route: requests for this model get 503" in _card(html, "route-lonely-model")


def test_reordering_saves_atomically_audits_and_the_gateway_uses_it_at_once(admin):
    response = _post(admin, "/admin/routes/gpt-4o-mini/order", [("channel", "backup"), ("channel", "primary")])
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<article id="route-gpt-4o-mini"')
    assert "Order saved: backup, primary." in html
    assert _order() == ["backup", "primary"]
    assert [s.channel.name for s in plan("gpt-4o-mini", ["official", "routed"], utcnow())] == ["backup", "primary"]
    [event] = _events()
    assert (event.action, event.subject, event.before, event.after) == (
        "route_reordered", "route gpt-4o-mini",
        {"channels": ["primary", "backup"]}, {"channels": ["backup", "primary"]})
    # The same order again changes nothing and records nothing.
    _post(admin, "/admin/routes/gpt-4o-mini/order", [("channel", "backup"), ("channel", "primary")])
    assert len(_events()) == 1


@pytest.mark.parametrize("names, words", [
    (["primary"], "leaves out backup"),
    (["primary", "backup", "backup"], "names backup twice"),
    (["primary", "backup", "stranger"], "names stranger, not in the route"),
    (["backup", "stranger"], "leaves out primary"),
    ([], "leaves out primary, backup"),
])
def test_a_bad_order_is_400_with_a_clear_message_and_changes_nothing(admin, names, words):
    response = _post(admin, "/admin/routes/gpt-4o-mini/order", [("channel", name) for name in names])
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "must name exactly its route's channels (primary, backup)" in html and words in html
    assert "Nothing was changed." in html
    assert re.findall(r'name="channel" value="([^"]+)"', html.split("</form>")[0]) == ["primary", "backup"]
    assert _order() == ["primary", "backup"] and _events() == []


def test_a_bad_order_without_htmx_answers_the_page_with_400(admin):
    response = _post(admin, "/admin/routes/gpt-4o-mini/order", [("channel", "primary")], htmx=False)
    assert response.status_code == 400 and "<html" in response.get_data(as_text=True)
    assert "leaves out backup" in response.get_data(as_text=True)


def test_an_unknown_model_is_404(admin):
    assert _post(admin, "/admin/routes/no-such-model/order", [("channel", "primary")]).status_code == 404


def test_up_and_down_buttons_post_the_same_endpoint_with_the_swapped_order(admin):
    html = admin.get("/admin/routes").get_data(as_text=True)
    card = _card(html, "route-gpt-4o-mini")
    down = card.split('<form id="route-gpt-4o-mini-down-1"')[1].split("</form>")[0]
    up = card.split('<form id="route-gpt-4o-mini-up-2"')[1].split("</form>")[0]
    for form in (down, up):
        assert 'hx-post="/admin/routes/gpt-4o-mini/order"' in form
        assert re.findall(r'name="channel" value="([^"]+)"', form) == ["backup", "primary"]
    assert 'form="route-gpt-4o-mini-down-1"' in card and 'form="route-gpt-4o-mini-up-2"' in card
    assert 'id="route-gpt-4o-mini-up-1"' not in card  # the primary has no step above it


def test_steps_are_added_at_the_end_and_removed_with_the_rest_moving_up(admin, tmp_path):
    import_config_text(EXTRA, tmp_path)
    response = _post(admin, "/admin/routes/gpt-4o-mini/steps", {"channel": "keyless"})
    assert response.status_code == 200 and "keyless added as the last step." in response.get_data(as_text=True)
    assert _order() == ["primary", "backup", "keyless"]
    page = admin.get("/admin/routes").get_data(as_text=True)
    assert 'hx-confirm="Remove primary from the route of gpt-4o-mini?' in _card(page, "route-gpt-4o-mini")
    response = _post(admin, "/admin/routes/gpt-4o-mini/steps/remove", {"channel": "primary"})
    assert response.status_code == 200
    db.session.rollback()
    steps = db.session.execute(db.select(RouteStep.position, Channel.name).join(Channel)
                               .where(RouteStep.model_id == "gpt-4o-mini").order_by(RouteStep.position)).all()
    assert steps == [(1, "backup"), (2, "keyless")]
    assert [(e.action, e.before, e.after) for e in _events()] == [
        ("route_step_added", {"channels": ["primary", "backup"]}, {"channels": ["primary", "backup", "keyless"]}),
        ("route_step_removed", {"channels": ["primary", "backup", "keyless"]}, {"channels": ["backup", "keyless"]})]
    # A first step for a published model with no route.
    _post(admin, "/admin/routes/lonely-model/steps", {"channel": "unmapped"})
    assert _order("lonely-model") == ["unmapped"]


def test_adding_a_step_already_in_the_route_or_removing_one_not_in_it_is_400(admin):
    assert _post(admin, "/admin/routes/gpt-4o-mini/steps", {"channel": "primary"}).status_code == 400
    assert _post(admin, "/admin/routes/gpt-4o-mini/steps", {"channel": "ghost"}).status_code == 400
    assert _post(admin, "/admin/routes/gpt-4o-mini/steps/remove", {"channel": "ghost"}).status_code == 400
    assert _order() == ["primary", "backup"] and _events() == []


def test_after_a_reorder_the_next_api_request_is_served_by_the_new_primary(admin, openai_client):
    _post(admin, "/admin/routes/gpt-4o-mini/order", [("channel", "backup"), ("channel", "primary")])
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "who serves?"}], max_tokens=10)
    assert raw.headers["X-Waybill-Route"] == "backup"
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["route"] == {"channel": "backup", "label": "Backup relay", "lane": "routed", "position": 1}
    assert receipt["fallback_used"] is False
