"""What /v1/models lists: published, routed models within the key's scope."""
from __future__ import annotations

from app.gateway.principal import Principal
from app.routing.planner import route_table


def models_for(principal: Principal) -> list[dict]:
    """OpenAI model objects for every model this caller may use."""
    table = route_table()
    return [{"id": model_id, "object": "model", "created": 0, "owned_by": table.models[model_id].provider}
            for model_id in sorted(table.models)
            if table.routes.get(model_id) and (principal.models is None or model_id in principal.models)]
