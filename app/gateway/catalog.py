"""What a key may see and ask of the catalog: the models it may use, and a prompt's token estimate."""
from __future__ import annotations

import calendar
from dataclasses import dataclass

from app.catalog.models import Model
from app.extensions import db
from app.gateway.errors import GatewayError
from app.gateway.parsing import estimate_tokens, parse_chat
from app.gateway.principal import Principal, check_scope
from app.routing.planner import ModelInfo, route_table


@dataclass(frozen=True)
class ListedModel:
    """A model as the model lists show it."""

    id: str
    name: str
    provider: str
    mode: str
    context_window: int
    max_output_tokens: int
    created: int  # Unix seconds: when the model entered this catalog


def models_for(principal: Principal) -> list[ListedModel]:
    """Every published, routed model this key may use, by id."""
    return _listed(_scope(principal))


def model_for(principal: Principal, model_id: str) -> ListedModel:
    """One model of the key's list; any other is 404 model_not_found, so a key learns nothing outside its scope."""
    found = _listed([model_id]) if model_id in _scope(principal) else []
    if not found:
        raise GatewayError(404, "model_not_found", f"no model {model_id!r} for this key")
    return found[0]


def openai_model(model: ListedModel) -> dict:
    """OpenAI's model object."""
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.provider}


def published_model(model_id: str, mode: str) -> ModelInfo:
    """A published model of this mode (chat or embedding), or 404 model_not_found."""
    model = route_table().models.get(model_id)
    if model is None or model.mode != mode:
        raise GatewayError(404, "model_not_found", f"unknown model {model_id!r}")
    return model


def count_prompt_tokens(principal: Principal, chat_body: object) -> int:
    """The gateway's estimate of a chat body's prompt, as a hold would count it; nothing is held or charged."""
    parsed = parse_chat(chat_body)
    check_scope(principal, published_model(parsed.model, "chat").id)
    return estimate_tokens(parsed.prompt_text)


def _scope(principal: Principal) -> list[str]:
    table = route_table()
    return [model_id for model_id in table.models
            if table.routes.get(model_id) and (principal.models is None or model_id in principal.models)]


def _listed(model_ids: list[str]) -> list[ListedModel]:
    rows = db.session.scalars(db.select(Model).where(Model.id.in_(model_ids)).order_by(Model.id)) if model_ids else []
    return [ListedModel(row.id, row.name, row.provider, row.mode, row.context_window, row.max_output_tokens,
                        calendar.timegm(row.created_at.utctimetuple())) for row in rows]
