"""Config import/export: every field, idempotent upsert, byte-stable round trip, nothing written on error."""
from __future__ import annotations

import pytest

from app.catalog.models import Model, PriceChange
from app.extensions import db
from app.routing.config_file import ConfigError, export_config, import_config
from app.routing.keys import resolve_key
from app.routing.models import Channel, RouteStep
from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "config.example.toml"


def _counts():
    return [db.session.scalar(db.select(db.func.count()).select_from(t)) for t in (Model, Channel, RouteStep, PriceChange)]


def test_import_applies_every_field(app):
    import_config(EXAMPLE)
    model = db.session.get(Model, "gpt-4o-mini")
    assert (model.name, model.provider, model.mode, model.context_window, model.max_output_tokens) == \
        ("GPT-4o mini", "openai", "chat", 128000, 16384)
    assert (model.input_per_mtok, model.output_per_mtok, model.cached_input_per_mtok) == (150_000, 600_000, 75_000)
    assert model.published
    relay = db.session.scalar(db.select(Channel).where(Channel.name == "relay-a"))
    assert (relay.label, relay.provider, relay.lane, relay.timeout_s, relay.enabled) == \
        ("Relay A", "openai-compatible", "routed", 30.5, True)
    assert relay.price_multiplier_text == "0.85"
    assert relay.model_map == {"gpt-4o-mini": "gpt-4o-mini"}
    steps = db.session.execute(db.select(RouteStep.position, Channel.name).join(Channel)
                               .where(RouteStep.model_id == "gpt-4o-mini").order_by(RouteStep.position)).all()
    assert steps == [(1, "openai-direct"), (2, "relay-a")]


def test_keys_are_encrypted_at_rest_and_never_exported(app, monkeypatch):
    import_config(EXAMPLE)
    relay = db.session.scalar(db.select(Channel).where(Channel.name == "relay-a"))
    assert b"sk-relay-a-demo-0000" not in relay.api_key_encrypted
    assert resolve_key(relay) == "sk-relay-a-demo-0000"
    direct = db.session.scalar(db.select(Channel).where(Channel.name == "openai-direct"))
    assert resolve_key(direct) is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234")
    assert resolve_key(direct) == "sk-from-env-1234"
    exported = export_config()
    assert "sk-relay" not in exported and 'api_key_env = "OPENAI_API_KEY"' in exported


def test_import_is_idempotent_and_round_trip_is_byte_stable(app, tmp_path):
    import_config(EXAMPLE)
    first = export_config()
    counts = _counts()
    import_config(EXAMPLE)
    assert _counts() == counts
    path = tmp_path / "exported.toml"
    path.write_text(first)
    import_config(path)
    assert export_config() == first
    assert _counts() == counts


def test_reimport_keeps_the_stored_key_and_records_price_changes(app, tmp_path):
    import_config(EXAMPLE)
    changed = EXAMPLE.read_text().replace("input_per_mtok = 0.15", "input_per_mtok = 0.12").replace(
        'api_key = "sk-relay-a-demo-0000"\n', "")
    path = tmp_path / "changed.toml"
    path.write_text(changed)
    import_config(path)
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 120_000
    change = db.session.scalar(db.select(PriceChange))
    assert (change.field, change.old_per_mtok, change.new_per_mtok) == ("input_per_mtok", 150_000, 120_000)
    relay = db.session.scalar(db.select(Channel).where(Channel.name == "relay-a"))
    assert resolve_key(relay) == "sk-relay-a-demo-0000"


def test_reordering_a_route_replaces_its_steps(app, tmp_path):
    import_config(EXAMPLE)
    path = tmp_path / "reordered.toml"
    path.write_text(EXAMPLE.read_text().replace('["openai-direct", "relay-a"]', '["relay-a", "openai-direct"]'))
    import_config(path)
    names = db.session.scalars(db.select(Channel.name).join(RouteStep).where(RouteStep.model_id == "gpt-4o-mini")
                               .order_by(RouteStep.position)).all()
    assert names == ["relay-a", "openai-direct"]


BAD_FILES = {
    "unknown lane": ('lane = "routed"', 'lane = "fast"', "channels[1] (relay-a): field 'lane': unknown lane 'fast'"),
    "unknown provider": ('provider = "openai-compatible"', 'provider = "azure"',
                         "channels[1] (relay-a): field 'provider': unknown provider 'azure'"),
    "missing channel": ('["openai-direct", "relay-a"]', '["openai-direct", "relay-b"]',
                        "routes[0] (gpt-4o-mini): field 'channels': unknown channel 'relay-b'"),
    "negative price": ("output_per_mtok = 0.60", "output_per_mtok = -0.60",
                       "models[0] (gpt-4o-mini): field 'output_per_mtok': a price cannot be negative"),
    "duplicate name": ('name = "relay-a"', 'name = "openai-direct"',
                       "channels[1] (openai-direct): field 'name': duplicate channel name 'openai-direct'"),
    "unknown field": ("timeout_s = 60\n", "timeout_s = 60\ntimeout = 5\n",
                      "channels[0] (openai-direct): field 'timeout': unknown field"),
    "bad multiplier": ("price_multiplier = 0.85", 'price_multiplier = "cheap"',
                       "channels[1] (relay-a): field 'price_multiplier': must be a number"),
    # Bounds on every number an operator types.
    "huge context window": ("context_window = 128000", "context_window = 9223372036854775807",
                            "models[0] (gpt-4o-mini): field 'context_window': must be a whole number from 0 to 10000000"),
    "fractional max output": ("max_output_tokens = 16384", "max_output_tokens = 16384.5",
                              "models[0] (gpt-4o-mini): field 'max_output_tokens': must be a whole number"),
    "boolean max output": ("max_output_tokens = 16384", "max_output_tokens = true",
                           "models[0] (gpt-4o-mini): field 'max_output_tokens': must be a whole number"),
    "huge price": ("output_per_mtok = 0.60", "output_per_mtok = 10000.000001",
                   "models[0] (gpt-4o-mini): field 'output_per_mtok': 10000.000001 is more than the maximum of $10,000"),
    "infinite price": ("output_per_mtok = 0.60", "output_per_mtok = inf",
                       "models[0] (gpt-4o-mini): field 'output_per_mtok': not a price: inf"),
    "price as text": ("output_per_mtok = 0.60", 'output_per_mtok = "0.60"',
                      "models[0] (gpt-4o-mini): field 'output_per_mtok': must be a number of USD per 1M tokens"),
    "infinite timeout": ("timeout_s = 60", "timeout_s = inf",
                         "channels[0] (openai-direct): field 'timeout_s': must be a number of seconds above 0 and at most 600"),
    "nan timeout": ("timeout_s = 60", "timeout_s = nan",
                    "channels[0] (openai-direct): field 'timeout_s': must be a number of seconds above 0 and at most 600"),
    "long timeout": ("timeout_s = 60", "timeout_s = 601",
                     "channels[0] (openai-direct): field 'timeout_s': must be a number of seconds above 0 and at most 600"),
    "huge multiplier": ("price_multiplier = 0.85", "price_multiplier = 1e6",
                        "channels[1] (relay-a): field 'price_multiplier': multiplier must be above 0 and at most 100"),
    "zero multiplier": ("price_multiplier = 0.85", "price_multiplier = 0",
                        "channels[1] (relay-a): field 'price_multiplier': multiplier must be above 0 and at most 100"),
    "nan multiplier": ("price_multiplier = 0.85", "price_multiplier = nan",
                       "channels[1] (relay-a): field 'price_multiplier': not a multiplier"),
    "fine multiplier": ("price_multiplier = 0.85", "price_multiplier = 0.3333333",
                        "channels[1] (relay-a): field 'price_multiplier': multiplier has more than 6 decimals"),
    "enabled as text": ("enabled = true", 'enabled = "yes"',
                        "channels[0] (openai-direct): field 'enabled': must be true or false"),
    "capability as number": ('mode = "chat"', 'mode = "chat"\nsupports_tools = 1',
                             "models[0] (gpt-4o-mini): field 'supports_tools': must be true or false"),
    "label as number": ('label = "Relay A"', "label = 5", "channels[1] (relay-a): field 'label': must be non-empty text"),
    "long label": ('label = "Relay A"', f'label = "{"A" * 121}"',
                   "channels[1] (relay-a): field 'label': must be at most 120 characters"),
    "long model id": ('id = "gpt-4o-mini"', f'id = "{"m" * 101}"', "models[0]: field 'id': must be at most 100 characters"),
    "name with a newline": ('name = "relay-a"', 'name = "relay-a\\n"',
                            "channels[1]: field 'name': must not contain control characters"),
    "control character": ('label = "Relay A"', 'label = "Relay\\u0000A"',
                          "channels[1] (relay-a): field 'label': must not contain control characters"),
    "key with a newline": ('api_key = "sk-relay-a-demo-0000"', 'api_key = "sk-relay\\r\\nX-Evil: 1"',
                           "channels[1] (relay-a): field 'api_key': must not contain control characters"),
    "long upstream id": ('"gpt-4o-mini" = "gpt-4o-mini"\n', f'"gpt-4o-mini" = "{"u" * 201}"\n',
                         "channels[1] (relay-a): field 'models': must map public model ids to upstream model ids"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_names_file_entry_and_field_and_writes_nothing(app, tmp_path, case):
    old, new, message = BAD_FILES[case]
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        import_config(path)
    assert f"{path}: {message}" in str(error.value)
    assert _counts() == [0, 0, 0, 0]


def test_the_bounds_themselves_are_accepted(app, tmp_path):
    path = tmp_path / "edges.toml"
    path.write_text(EXAMPLE.read_text().replace("context_window = 128000", "context_window = 10000000")
                    .replace("output_per_mtok = 0.60", "output_per_mtok = 10000")
                    .replace("timeout_s = 60", "timeout_s = 600").replace("price_multiplier = 0.85", "price_multiplier = 100"))
    import_config(path)
    model = db.session.get(Model, "gpt-4o-mini")
    assert (model.context_window, model.output_per_mtok) == (10_000_000, 10_000_000_000)
    channels = {c.name: c for c in db.session.scalars(db.select(Channel))}
    assert channels["openai-direct"].timeout_s == 600 and channels["relay-a"].price_multiplier_text == "100"


def test_invalid_toml_is_refused(app, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[[models]\nid = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        import_config(path)


def test_config_import_cli_exits_non_zero_on_a_bad_file(run_cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(EXAMPLE.read_text().replace('lane = "routed"', 'lane = "fast"'))
    result = run_cli("config", "import", str(path), check_rc=2)
    assert str(path) in result.stderr and "'lane'" in result.stderr
    assert run_cli("config", "export").stdout.strip() == "models = []\nchannels = []\nroutes = []"
