"""Whether a key leaked, decided without Waybill's redaction: the strings that betray each form of the key."""
from __future__ import annotations

import base64
import re

RUN = 8  # consecutive characters of the key, or of one of its encodings, that count as a leak
# The forms a hostile upstream echoes (the simulator's `echo_key` knob), named here on their own.
FORM_NAMES = ("exact", "run8", "base64", "basic", "base64url", "percent", "spaced", "masked")


def _windows(text: str, width: int) -> set[str]:
    return {text[i:i + width] for i in range(len(text) - width + 1)}


def telltales(key: str) -> dict[str, set[str]]:
    """Per family of forms, the strings whose presence anywhere means the key leaked in that form."""
    raw = key.encode()
    encoded = set()
    for offset in range(3):  # a key inside a longer base64 text starts at one of three alignments
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded |= _windows(encode(raw[offset:]).decode().rstrip("="), RUN)  # 8 characters carry 6 bytes
    percent = "".join(f"%{byte:02X}" for byte in raw)
    return {"raw": _windows(key, RUN), "base64": encoded,
            "percent": _windows(percent, 3 * RUN) | _windows(percent.lower(), 3 * RUN),
            "spaced": _windows(" ".join(key), 2 * RUN - 1),
            "hex": _windows(raw.hex(), 2 * RUN) | _windows(raw.hex().upper(), 2 * RUN)}


def leaks(text: str, key: str) -> list[str]:
    """Every telltale of the key found in text, as "family: telltale"; empty when nothing leaked."""
    found = [f"{family}: {tell}" for family, tells in telltales(key).items() for tell in tells if tell in text]
    masked = re.compile(re.escape(key[:4]) + r"\S{0,8}\*{2,}\S{0,8}" + re.escape(key[-4:]))
    found += [f"masked: {m.group()}" for m in masked.finditer(text)]
    return found
