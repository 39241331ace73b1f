"""The marketplace at /models and the route preview at /models/<id>: search, filters, prices, health, 404s."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.accounts.models import User
from app.accounts.service import issue_key, revoke_key
from app.catalog.models import Model
from app.database import utcnow
from app.extensions import db
from app.providers.base import ErrorClass
from app.routing.health import record_failure
from app.routing.models import Channel
from app.routing.planner import forget_cached_routes
from tests.conftest import import_config_text

HX = {"HX-Request": "true"}
ALL_MODELS = ["claude-sonnet-4-6", "gemini-2.5-flash", "gpt-4o-mini", "text-embedding-3-small", "text-only-model"]
# A second routed relay on gpt-4o-mini, at a multiplier whose prices need more than micro-dollar precision.
ODD_RELAY = """
[[channels]]
name = "relay-odd"
label = "Odd relay"
provider = "openai-compatible"
base_url = "{sim}/relay-odd/v1"
api_key = "sk-odd-secret-7777"
lane = "routed"
price_multiplier = 1.333333
[channels.models]
"gpt-4o-mini" = "openai/gpt-4o-mini"

[[routes]]
model = "gpt-4o-mini"
channels = ["primary", "backup", "relay-odd"]
"""
ODD_RELAY_CONFIG = ODD_RELAY.format(sim="http://127.0.0.1:9")  # never called: only its price and health show


@pytest.fixture
def browsing(providers, login_as):
    """Every provider's models on the simulator, and the gateway's user (one key, every model) signed in."""
    return login_as("api@example.com")


def html_of(response, status=200) -> str:
    assert response.status_code == status, response.status_code
    return response.get_data(as_text=True)


def listed(html: str) -> list[str]:
    """The model ids the results table lists, in order."""
    return re.findall(r'<tr data-model="([^"]+)"', html)


def text_of(html: str) -> str:
    """The HTML's text with tags dropped and white space folded, to read sentences across elements."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").split())


def row_of(html: str, marker: str, end: str = "</tr>") -> str:
    """The text of the element whose start tag holds this marker, up to `end`."""
    return text_of(html.split(marker, 1)[1].split(">", 1)[1].split(end, 1)[0])


def edit_channel(name: str, **values) -> None:
    channel = db.session.scalar(db.select(Channel).where(Channel.name == name))
    for key, value in values.items():
        setattr(channel, key, value)
    db.session.commit()
    forget_cached_routes()


def channel_id(name: str) -> int:
    return db.session.scalar(db.select(Channel.id).where(Channel.name == name))


# The marketplace.

def test_the_marketplace_lists_published_routed_models_with_exact_prices(browsing):
    html = html_of(browsing.get("/models"))
    assert listed(html) == ALL_MODELS  # by name: Claude, Gemini, GPT, then the ones named by their id
    mini = row_of(html, 'data-model="gpt-4o-mini"')
    assert "GPT-4o mini" in mini and "128,000" in mini and "chat" in mini
    assert "$0.15 / $0.60" in mini  # official
    assert "$0.225 / $0.90" in mini and "from" not in mini  # routed: x1.5, one routed step
    assert mini.count("healthy") == 2  # a health badge per route step
    claude = row_of(html, 'data-model="claude-sonnet-4-6"')
    assert "$3.00 / $15.00" in claude and "$3.60 / $18.00" in claude  # relay-c x1.2
    assert 'href="/models/gpt-4o-mini"' in html


def test_several_routed_steps_show_the_cheapest_from_and_prices_stay_exact(browsing, tmp_path):
    import_config_text(ODD_RELAY_CONFIG, tmp_path)
    mini = row_of(html_of(browsing.get("/models")), 'data-model="gpt-4o-mini"')
    # 0.15 x 1.333333 = 0.19999995 and 0.60 x 1.333333 = 0.7999998: nothing rounded away.
    assert "from $0.19999995 / $0.7999998" in mini
    assert mini.count("healthy") == 3


def test_a_disabled_relay_sets_no_routed_price(browsing):
    edit_channel("relay-c", enabled=False)
    html = html_of(browsing.get("/models"))
    claude = row_of(html, 'data-model="claude-sonnet-4-6"')
    assert "$3.00 / $15.00 —" in claude
    assert "unavailable" in claude


def test_search_matches_name_id_and_provider_and_htmx_gets_the_fragment(browsing):
    assert listed(html_of(browsing.get("/models?q=claude"))) == ["claude-sonnet-4-6"]
    assert listed(html_of(browsing.get("/models?q=GEMINI"))) == ["gemini-2.5-flash"]
    assert listed(html_of(browsing.get("/models?q=anthropic"))) == ["claude-sonnet-4-6"]  # its provider
    assert listed(html_of(browsing.get("/models?q=gpt-4o"))) == ["gpt-4o-mini"]
    fragment = html_of(browsing.get("/models?q=mini", headers=HX))
    assert fragment.lstrip().startswith('<section id="model-results"') and "<html" not in fragment
    assert listed(fragment) == ["gemini-2.5-flash", "gpt-4o-mini"]  # GPT-4o mini, and Ge*mini*
    page = html_of(browsing.get("/models?q=claude"))
    assert 'value="claude"' in page and "<html" in page


def test_no_match_is_an_empty_state_naming_the_search(browsing):
    html = html_of(browsing.get("/models?q=llama", headers=HX))
    assert listed(html) == []
    assert '<p class="empty">' in html and "No model matches “llama”" in html
    assert 'href="/models"' in html


def test_the_mode_filter(browsing):
    assert listed(html_of(browsing.get("/models?mode=embedding"))) == ["text-embedding-3-small"]
    assert "text-embedding-3-small" not in listed(html_of(browsing.get("/models?mode=chat")))
    assert listed(html_of(browsing.get("/models?mode=nonsense"))) == ALL_MODELS
    html = html_of(browsing.get("/models?mode=embedding&q=claude"))
    assert listed(html) == [] and "among embedding models" in html


def test_the_scope_filter_counts_only_usable_keys(providers, client, login_as, make_user):
    user = make_user("scoped@example.com")
    issue_key(user, "mini only", models=["gpt-4o-mini", "text-only-model"])
    revoke_key(user.id, issue_key(user, "revoked, all models").key.id)
    expired = issue_key(user, "expired, all models").key
    expired.expires_at = utcnow() - timedelta(days=1)
    db.session.commit()
    login_as("scoped@example.com")
    assert listed(html_of(client.get("/models?mine=1"))) == ["gpt-4o-mini", "text-only-model"]
    assert listed(html_of(client.get("/models"))) == ALL_MODELS
    assert listed(html_of(client.get("/models?mine=1&q=claude"))) == []
    assert 'id="model-mine" checked' in html_of(client.get("/models?mine=1"))

    issue_key(db.session.get(User, user.id), "every model")  # models=None: the key may use all of them
    assert listed(html_of(client.get("/models?mine=1"))) == ALL_MODELS


def test_without_a_usable_key_the_scope_filter_says_so(providers, login_as):
    client = login_as("keyless@example.com")
    html = html_of(client.get("/models?mine=1"))
    assert listed(html) == []
    assert "no usable API key" in html and 'href="/keys"' in html


def test_unpublished_models_are_not_listed(browsing):
    db.session.get(Model, "text-only-model").published = False
    db.session.commit()
    forget_cached_routes()
    assert "text-only-model" not in listed(html_of(browsing.get("/models")))


# The route preview.

def test_the_preview_shows_every_step_with_lane_wallet_exact_price_and_model(browsing, tmp_path):
    import_config_text(ODD_RELAY_CONFIG, tmp_path)
    html = html_of(browsing.get("/models/gpt-4o-mini"))
    primary, backup, odd = (row_of(html, f'id="step-{n}"') for n in (1, 2, 3))
    assert primary.split()[:4] == ["1", "Primary", "(official)", "primary"]
    assert "official" in primary and "Credit" in primary and "$0.15 $0.60" in primary
    assert "gpt-4o-mini-2024-07-18" in primary and "healthy" in primary
    assert "Backup relay" in backup and "routed" in backup and "routed balance" in backup
    assert "$0.225 $0.90" in backup
    assert "gpt-4o-mini" in backup and "same model as the primary" in backup  # a dated snapshot is the same
    assert "$0.19999995 $0.7999998" in odd
    assert "openai/gpt-4o-mini" in odd and "a different model from the primary's" in odd
    assert html.count('class="badge lane-routed"') >= 2 and 'class="badge lane-official"' in html
    sentence = row_of(html, 'id="fallback-sentence"', end="</p>")
    assert sentence == ('If the primary fails, this request is charged from your routed '
                        'balance at $0.225 input / $0.90 output per 1M tokens, through Backup relay routed .')


def test_the_fallback_sentence_names_the_first_usable_backup(browsing, tmp_path, clock):
    import_config_text(ODD_RELAY_CONFIG, tmp_path)
    edit_channel("backup", enabled=False)
    html = html_of(browsing.get("/models/gpt-4o-mini"))
    assert "unavailable" in row_of(html, 'id="step-2"') and "disabled" in row_of(html, 'id="step-2"')
    assert "charged from your routed balance at $0.19999995 input / $0.7999998 output per 1M tokens, " \
           "through Odd relay" in text_of(html)

    for _ in range(3):
        record_failure(channel_id("relay-odd"), ErrorClass.TIMEOUT)
    text = text_of(html_of(browsing.get("/models/gpt-4o-mini")))
    assert "cooling for 30 s" in text
    assert "through Odd relay routed , which is cooling for 30 s: no backup is ready, so it is probed early" in text

    edit_channel("relay-odd", enabled=False)
    text = text_of(html_of(browsing.get("/models/gpt-4o-mini")))
    assert "If the primary fails, no backup can serve this request now, so it fails and nothing is charged." in text


def test_a_cooling_primary_is_said_plainly(browsing, clock):
    for _ in range(3):
        record_failure(channel_id("primary"), ErrorClass.UPSTREAM_5XX)
    html = html_of(browsing.get("/models/gpt-4o-mini"))
    assert "cooling" in row_of(html, 'id="step-1"') and "for 30 s" in row_of(html, 'id="step-1"')
    assert "The primary is cooling for 30 s now" in text_of(html)
    clock.advance(10)
    assert "for 20 s" in row_of(html_of(browsing.get("/models/gpt-4o-mini")), 'id="step-1"')


def test_a_model_without_backup_says_so(browsing):
    html = html_of(browsing.get("/models/text-only-model"))
    assert "This model has no backup route: if the primary fails, the request fails and nothing is charged." \
        in text_of(html)
    assert 'id="step-2"' not in html


def test_the_preview_fragment_polls_while_visible(browsing):
    fragment = html_of(browsing.get("/models/gpt-4o-mini", headers=HX))
    assert fragment.lstrip().startswith('<section id="route"') and "<html" not in fragment
    assert 'hx-trigger="every 2s, visible"' in fragment and "data-poll" in fragment
    assert 'hx-get="/models/gpt-4o-mini"' in fragment
    assert "snippet-curl" not in fragment  # the snippets stay put while the route refreshes


def test_snippets_point_each_sdk_at_this_waybill(browsing):
    html = html_of(browsing.get("/models/claude-sonnet-4-6"))
    for name in ("curl", "openai", "anthropic", "google-genai"):
        assert f'<code id="snippet-{name}">' in html and f'data-copy="#snippet-{name}"' in html
    text = text_of(html)
    assert "curl -i http://localhost/v1/chat/completions" in text
    assert 'OpenAI(base_url="http://localhost/v1"' in html.replace("&#34;", '"')
    assert 'anthropic.Anthropic(base_url="http://localhost"' in html.replace("&#34;", '"')
    assert 'HttpOptions(base_url="http://localhost")' in html.replace("&#34;", '"')
    assert '"model": "claude-sonnet-4-6"' in html.replace("&#34;", '"')

    embedding = html_of(browsing.get("/models/text-embedding-3-small"))
    assert "/v1/embeddings" in embedding and "snippet-anthropic" not in embedding


def test_the_preview_prices_are_what_a_fallback_receipt_applies(browsing, openai_client, gateway):
    gateway.sim.set_fault("primary", status=503)
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "which price?"}])
    receipt = openai_client.get(f"/receipts/{raw.headers['X-Waybill-Receipt']}", cast_to=object)
    assert receipt["route"]["position"] == 2
    backup = row_of(html_of(browsing.get("/models/gpt-4o-mini")), 'id="step-2"')
    price = receipt["price"]
    assert f"${float(price['input_per_mtok']):.3f} ${float(price['output_per_mtok']):.2f}" in backup


@pytest.mark.parametrize("model_id", ["no-such-model", "text-only-model", "orphan"])
def test_unknown_unpublished_and_unrouted_models_are_404_in_the_sites_layout(browsing, model_id):
    db.session.get(Model, "text-only-model").published = False
    db.session.add(Model(id="orphan", name="Orphan", provider="openai", input_per_mtok=1, output_per_mtok=1,
                         published=True))
    db.session.commit()
    forget_cached_routes()
    html = html_of(browsing.get(f"/models/{model_id}"), status=404)
    assert "Page not found" in html and "<nav" in html


def test_users_never_see_a_channels_base_url_or_key(browsing, tmp_path):
    import_config_text(ODD_RELAY_CONFIG, tmp_path)
    channels = db.session.scalars(db.select(Channel)).all()
    secrets = [c.base_url for c in channels] + ["sk-primary-secret-1111", "sk-backup-secret-2222", "sk-odd-secret-7777",
                                                 "sk-ant-direct-4444", "AIzaSyTestKey", "sk-relay-c-5555"]
    secrets += [c.api_key_last4 for c in channels if c.api_key_last4]
    pages = [html_of(browsing.get(path)) for path in
             ["/models", "/models?q=gpt", "/models/gpt-4o-mini", "/models/claude-sonnet-4-6",
              "/models/gemini-2.5-flash", "/models/text-embedding-3-small"]]
    pages.append(html_of(browsing.get("/models/gpt-4o-mini", headers=HX)))
    for html in pages:
        leaked = [secret for secret in secrets if secret in html]
        assert leaked == []
    assert "127.0.0.1" not in "".join(pages)
