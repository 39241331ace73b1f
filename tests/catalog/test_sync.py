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
