"""The hostile-upstream world: one channel of every provider, each with a random key of its own."""
from __future__ import annotations

import random
import string
from dataclasses import dataclass

import pytest

from tests.conftest import import_config_text

PROVIDERS = ("openai", "openai-compatible", "anthropic", "gemini")
KEY_ALPHABET = string.ascii_letters + string.digits + "_-"
# Where each provider's API root is on the simulator, relative to the channel's own prefix.
API_ROOT = {"openai": "/v1", "openai-compatible": "/v1", "anthropic": "", "gemini": ""}

MODELS = """
[[models]]
id = "{name}"
provider = "openai"
mode = "{mode}"
max_output_tokens = 1000
input_per_mtok = 1.0
output_per_mtok = 1.0
"""

CHANNEL = """
[[channels]]
name = "{name}"
label = "{name}"
provider = "{provider}"
base_url = "{sim}/{name}{root}"
api_key = "{key}"
lane = "official"
timeout_s = 5
[channels.models]
{models}
"""

ROUTE = """
[[routes]]
model = "{model}"
channels = [{channels}]
"""


@dataclass(frozen=True)
class HostileChannel:
    """One provider's channel: its name, its key, and the public models routed to it."""

    provider: str
    name: str
    key: str

    @property
    def chat(self) -> str:
        """A chat model routed to this channel alone, so its failures reach the client."""
        return f"{self.name}-chat"

    @property
    def fallback(self) -> str:
        """A chat model routed to this channel first and to the healthy `safe` channel after it."""
        return f"{self.name}-fallback"

    @property
    def embed(self) -> str | None:
        """An embedding model on this channel, for the providers that serve embeddings."""
        return f"{self.name}-embed" if self.provider.startswith("openai") else None


def _random_key(seed: str) -> str:
    """A key of 40 random characters: no run of it can appear in a message by chance."""
    rng = random.Random(seed)
    return "".join(rng.choice(KEY_ALPHABET) for _ in range(40))


def hostile_channels() -> dict[str, HostileChannel]:
    return {p: HostileChannel(p, f"hostile-{p.replace('openai-compatible', 'relay')}", _random_key(p))
            for p in PROVIDERS}


def _config(sim_root: str, channels: dict[str, HostileChannel]) -> str:
    """Each hostile channel with its models and routes, and the healthy `safe` channel behind the fallback twins."""
    parts = []
    for channel in channels.values():
        public = [m for m in (channel.chat, channel.fallback, channel.embed) if m]
        mapping = "\n".join(f'"{m}" = "upstream-{m.rsplit("-", 1)[1]}"' for m in public)
        parts.append(CHANNEL.format(name=channel.name, provider=channel.provider, sim=sim_root,
                                    root=API_ROOT[channel.provider], key=channel.key, models=mapping))
        for model in public:
            parts.append(MODELS.format(name=model, mode="embedding" if model == channel.embed else "chat"))
            steps = [channel.name, "safe"] if model == channel.fallback else [channel.name]
            parts.append(ROUTE.format(model=model, channels=", ".join(f'"{s}"' for s in steps)))
    safe_models = "\n".join(f'"{c.fallback}" = "upstream-fallback"' for c in channels.values())
    parts.append(CHANNEL.format(name="safe", provider="openai-compatible", sim=sim_root, root="/v1",
                                key=_random_key("safe"), models=safe_models))
    return "".join(parts)


@pytest.fixture
def hostile(gateway, tmp_path) -> dict[str, HostileChannel]:
    """The gateway world plus a channel of each provider (with a fallback-routed twin) on the simulator."""
    channels = hostile_channels()
    import_config_text(_config(gateway.sim.root, channels), tmp_path)
    return channels


@pytest.fixture(scope="session")
def elsewhere():
    """A second simulator: where a hostile upstream redirects to; it must never hear from Waybill."""
    from app.simulator.server import start_simulator
    other = start_simulator()
    yield other
    other.stop()
