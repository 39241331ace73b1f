"""Which adapter speaks which provider's protocol."""
from __future__ import annotations

from types import ModuleType

from app.providers import anthropic, gemini, openai

ADAPTERS: dict[str, ModuleType] = {"openai": openai, "openai-compatible": openai, "anthropic": anthropic,
                                   "gemini": gemini}


def adapter_for(provider: str) -> ModuleType:
    """The adapter module (with send and open_stream) for a provider."""
    return ADAPTERS[provider]
