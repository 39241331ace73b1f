"""Fixtures of the API tests: every provider behind the gateway, and each official SDK pointed at it."""
from __future__ import annotations

import pytest

from app.simulator.state import Fault
from app.simulator.wire import reply_words
from tests.conftest import import_config_text


@pytest.fixture
def genai_client(providers, live_server):
    """The official google-genai SDK, unmodified but for its base URL."""
    from google import genai
    from google.genai import types
    return genai.Client(api_key=providers.key, http_options=types.HttpOptions(base_url=live_server, timeout=30_000))


# A relay as loose as some OpenAI-compatible ones are, played by the simulator's `loose` knob: content
# parts, and no object, created, logprobs, refusal, index or total_tokens.
SPARSE_CONFIG = """
[[models]]
id = "sparse-chat"
provider = "openai-compatible"
input_per_mtok = 1.0
output_per_mtok = 2.0

[[models]]
id = "sparse-embed"
provider = "openai-compatible"
mode = "embedding"
input_per_mtok = 0.1
output_per_mtok = 0.0

[[channels]]
name = "sparse"
label = "Sparse relay"
provider = "openai-compatible"
base_url = "{sim}/sparse/v1"
api_key = "sk-sparse-6666"
lane = "routed"
timeout_s = 5
[channels.models]
"sparse-chat" = "sparse-upstream"
"sparse-embed" = "sparse-embedder"

[[routes]]
model = "sparse-chat"
channels = ["sparse"]

[[routes]]
model = "sparse-embed"
channels = ["sparse"]
"""
# What the sparse relay says, in content parts of one word each.
SPARSE_ANSWER = "".join(reply_words("sparse", "sparse-upstream", Fault().reply_tokens))


@pytest.fixture
def sparse_relay(providers, tmp_path):
    """The providers' world plus sparse-chat and sparse-embed, served only by a loose simulated relay."""
    import_config_text(SPARSE_CONFIG.format(sim=providers.sim.root), tmp_path)
    providers.sim.set_fault("sparse", loose=True)
    return providers
