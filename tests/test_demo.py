"""`waybill demo` seeds a world where every model answers through the simulator."""
from __future__ import annotations

import openai

from app.demo import DEMO_ROUTES, seed_demo


def test_demo_seed_serves_every_routed_model(app, simulator_server, live_server):
    lines = seed_demo(base_url=live_server, simulator_root=simulator_server.root)
    key = lines[-1].split()[-1]
    assert key.startswith("wb-")
    assert len(seed_demo(base_url=live_server, simulator_root=simulator_server.root)) == len(lines)  # idempotent
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=key, max_retries=0)
    for model, route in DEMO_ROUTES.items():
        if model.startswith("text-embedding"):
            raw = client.embeddings.with_raw_response.create(model=model, input="hello")
        else:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["X-Waybill-Route"] == route[0], model
