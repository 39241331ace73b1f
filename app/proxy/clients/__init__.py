"""Inbound translation: the APIs clients speak (Anthropic's, Google's), to and from the gateway's OpenAI chat format."""
from __future__ import annotations

import json


def tool_arguments(arguments) -> dict:
    """An OpenAI tool call's arguments as an object; text that is not a JSON object is kept rather than lost."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}
