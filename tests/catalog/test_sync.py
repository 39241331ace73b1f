"""Catalog sync from LiteLLM's JSON: prices in micro-USD, hidden new models, price history."""
from __future__ import annotations

import json

import pytest

from app.catalog.models import Model, PriceChange
from app.catalog.sync import SHIPPED_SNAPSHOT, per_token_to_per_mtok, sync_catalog
from app.errors import ServiceError
from app.extensions import db


def test_shipped_snapshot_has_chat_models_of_three_vendors_and_two_embeddings(app):
    report = sync_catalog()
    assert len(report.added) == 20
    models = db.session.scalars(db.select(Model)).all()
    assert {m.provider for m in models if m.mode == "chat"} == {"openai", "anthropic", "gemini"}
    assert sum(m.mode == "embedding" for m in models) == 2
    assert not any(m.published for m in models)
    mini = db.session.get(Model, "gpt-4o-mini")
    assert (mini.input_per_mtok, mini.output_per_mtok, mini.cached_input_per_mtok) == (150_000, 600_000, 75_000)
    assert db.session.get(Model, "gemini-2.5-flash") is not None  # provider prefix dropped


def test_price_change_is_reported_and_kept_as_history(app, tmp_path):
    sync_catalog()
    db.session.get(Model, "gpt-4o-mini").published = True
    db.session.commit()
    data = json.loads(SHIPPED_SNAPSHOT.read_text())
    data["gpt-4o-mini"]["input_cost_per_token"] = 1.2e-07
    data["brand-new-model"] = {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06,
                               "output_cost_per_token": 2e-06, "max_input_tokens": 1000, "max_output_tokens": 100}
    data["some-image-model"] = {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_token": 1e-06}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    report = sync_catalog(str(path))
    assert report.changed == ["changed gpt-4o-mini: input $0.1500 -> $0.1200 per 1M"]
    assert report.added == ["added brand-new-model (hidden): input $1.0000 output $2.0000 per 1M"]
    assert report.lines()[-1] == "1 added, 1 changed, 19 unchanged"
    history = db.session.scalar(db.select(PriceChange).where(PriceChange.model_id == "gpt-4o-mini"))
    assert (history.field, history.old_per_mtok, history.new_per_mtok) == ("input_per_mtok", 150_000, 120_000)
    assert db.session.get(Model, "gpt-4o-mini").published  # a sync never unpublishes
    assert not db.session.get(Model, "brand-new-model").published
    assert db.session.get(Model, "some-image-model") is None


@pytest.mark.parametrize("cost,micros", [(1.5e-07, 150_000), (2.5e-06, 2_500_000), (7.5e-08, 75_000), (0, 0), (1e-12, 1)])
def test_per_token_cost_converts_exactly(cost, micros):
    assert per_token_to_per_mtok(cost) == micros


def test_unreadable_source_is_a_clear_error(app, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[1, 2]")
    with pytest.raises(ServiceError, match="expected a JSON object"):
        sync_catalog(str(path))


def test_absurd_entries_are_skipped_with_a_note_and_keep_the_last_good_price(app, tmp_path):
    sync_catalog()
    data = json.loads(SHIPPED_SNAPSHOT.read_text())
    data["gpt-4o-mini"]["input_cost_per_token"] = 1e300
    data["gpt-4o"]["output_cost_per_token"] = -1e-06
    entry = {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}
    data["costly-model"] = {**entry, "input_cost_per_token": 0.010000001}  # above $10,000 per 1M
    data["huge-window-model"] = {**entry, "max_input_tokens": 2 ** 63}
    data["text-window-model"] = {**entry, "max_output_tokens": "lots"}
    data["nan-model"] = {**entry, "output_cost_per_token": float("nan")}
    data["text-price-model"] = {**entry, "input_cost_per_token": "1e-06"}
    data["m" * 101] = entry
    data["listed-provider-model"] = {**entry, "litellm_provider": ["openai"]}  # not one Waybill serves: ignored
    data["fine-model"] = {**entry, "input_cost_per_token": 0.01}  # exactly $10,000 per 1M
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    report = sync_catalog(str(path))
    assert report.added == ["added fine-model (hidden): input $10000.0000 output $2.0000 per 1M"]
    assert report.changed == []
    skipped = "\n".join(report.skipped)
    for key in ("gpt-4o-mini", "gpt-4o", "costly-model", "huge-window-model", "text-window-model", "nan-model",
                "text-price-model", "m" * 20):
        assert f"skipped '{key}" in skipped
    assert "more than the maximum of $10,000" in skipped and "cannot be negative" in skipped
    assert report.lines()[-1] == "1 added, 0 changed, 18 unchanged, 8 skipped"
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 150_000
    assert db.session.scalar(db.select(db.func.count()).select_from(PriceChange)) == 0
    assert db.session.get(Model, "costly-model") is None and db.session.get(Model, "listed-provider-model") is None


@pytest.mark.parametrize("cost", [True, None, "abc", float("inf"), float("nan"), -1e-06, 0.010000001, 2 ** 70])
def test_per_token_cost_refuses_what_is_not_a_bounded_price(cost):
    with pytest.raises(ValueError):
        per_token_to_per_mtok(cost)
