"""Remove anything that looks like a credential from text before it leaves the process."""
from __future__ import annotations

import re

PATTERNS = [
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{4,}"), "sk-[redacted]"),
    (re.compile(r"AIza[0-9A-Za-z_\-]{10,}"), "AIza[redacted]"),
    (re.compile(r"(?i)bearer\s+[^\s\"',;]+"), "Bearer [redacted]"),
    (re.compile(r"(?i)([a-z0-9_\-]*key)=[^&\s\"']+"), r"\1=[redacted]"),
    (re.compile(r"wb-[A-Za-z0-9_\-]{20,}"), "wb-[redacted]"),
]


def redact(text: str, *secrets: str | None) -> str:
    """Mask known secrets and credential-shaped strings in text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text
