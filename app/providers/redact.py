"""Remove anything that looks like a credential from text before it leaves the process.

A known secret (a channel's key) is found in every form a careless or hostile upstream could echo it in:
the key itself or any run of RUN of its characters, in any case; percent-, \\u-, \\x- or &#-escaped; with
separators between its characters; its base64 (standard or urlsafe, padded or not, at each of the three
alignments a substring can have) and hex; and masked, a prefix and a suffix of it around asterisks. The
text is looked at through three views (as written, escapes decoded, letters and digits only) and the
key's forms through the same views, so one matcher finds them all; what it finds is replaced by MARKER.
"""
from __future__ import annotations

import base64
import functools
import re
import unicodedata
from typing import Iterable, NamedTuple

PATTERNS = [
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{4,}"), "sk-[redacted]"),
    (re.compile(r"AIza[0-9A-Za-z_\-]{10,}"), "AIza[redacted]"),
    (re.compile(r"(?i)bearer\s+[^\s\"',;]+"), "Bearer [redacted]"),
    (re.compile(r"(?i)([a-z0-9_\-]*key)=[^&\s\"']+"), r"\1=[redacted]"),
    (re.compile(r"wb-[A-Za-z0-9_\-]{20,}"), "wb-[redacted]"),
]

MARKER = "[redacted]"
RUN = 8            # this many consecutive characters of a secret, in any form, are a leak
MIN_SECRET = 4     # a shorter "secret" would garble ordinary words in error messages
MASKED_MIN = RUN   # a masked form is a leak when its prefix and suffix of the key add up to a run
MAX_TEXT = 2000    # the default length cap of a redacted string
ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})"
                    r"|&#[xX]([0-9A-Fa-f]{1,6});|&#([0-9]{1,7});")
MASK = re.compile(r"\s?(?:[*\u2022\u25cf\u00b7#]{2,}|\u2026+|\.{3,})\s?")
ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


class View(NamedTuple):
    """Text as one matcher sees it: each character of `text` came from original[starts[i]:ends[i]]."""

    text: str
    starts: list[int]
    ends: list[int]


def redact(text: str, *secrets: str | None, limit: int = MAX_TEXT) -> str:
    """Mask the given secrets in every recognised form and credential-shaped strings; cap the length at limit."""
    text = str(text)
    keys = [s for s in secrets if s and len(s) >= MIN_SECRET]
    # Look a little past the cap, so a form the cut would split is still recognised whole.
    text = text[:limit + 64 + 4 * max(map(len, keys), default=0)]
    spans = [span for key in keys for span in _secret_spans(text, key)]
    text = _replace(text, spans)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return _cut(text, limit)


def _secret_spans(text: str, key: str) -> list[tuple[int, int]]:
    """Where key appears in text, in any form, as (start, end) spans of text."""
    spans = _masked_spans(text, key)
    for view, wanted in zip(_views(text), _grams(key)):
        for size, grams in wanted:
            spans += [(view.starts[i], _past_padding(text, view.ends[i + size - 1]))
                      for i in range(len(view.text) - size + 1) if view.text[i:i + size] in grams]
    return spans


def _past_padding(text: str, end: int) -> int:
    """end moved past the base64 padding that may follow a match, so no stray "==" is left behind."""
    padding = len(text[end:end + 2]) - len(text[end:end + 2].lstrip("="))
    return end + padding


def _views(text: str) -> tuple[View, View, View]:
    """Text as written, with its escapes decoded, and as its letters and digits only; all lowercased."""
    decoded = list(_decoded(text))
    return (_view((c.lower(), i, i + 1) for i, c in enumerate(text)), _view(decoded),
            _view((c, start, end) for piece, start, end in decoded for c in piece if c in ALNUM))


def _view(pieces: Iterable[tuple[str, int, int]]) -> View:
    chars, starts, ends = [], [], []
    for piece, start, end in pieces:
        for char in piece:  # one piece may lowercase or normalize to several characters
            chars.append(char)
            starts.append(start)
            ends.append(end)
    return View("".join(chars), starts, ends)


def _decoded(text: str) -> Iterable[tuple[str, int, int]]:
    """Lowercased pieces of text with escapes decoded and compatibility characters (fullwidth…) normalized."""
    position = 0
    for match in ESCAPE.finditer(text):
        yield from _plain(text, position, match.start())
        code = int(next(g for g in match.groups() if g is not None), 10 if match.group(5) else 16)
        yield (chr(code).lower() if code < 0x110000 else "", match.start(), match.end())
        position = match.end()
    yield from _plain(text, position, len(text))


def _plain(text: str, start: int, end: int) -> Iterable[tuple[str, int, int]]:
    for i in range(start, end):
        char = text[i]
        yield (unicodedata.normalize("NFKC", char) if char >= "\x80" else char).lower(), i, i + 1


@functools.lru_cache(maxsize=256)
def _grams(key: str) -> tuple[tuple[tuple[int, frozenset[str]], ...], ...]:
    """Per view: (size, windows) pairs of the key's forms that a window of text must not equal."""
    forms = [_views(form) for form in _encoded_forms(key)]
    per_view = []
    for index, key_view in enumerate(_views(key)):
        wanted = []
        # Only the key as written may be shorter than RUN; a short fragment elsewhere would match ordinary words.
        own = key_view.text
        if index == 0 and MIN_SECRET <= len(own) < RUN:
            wanted.append((len(own), frozenset([own])))
        texts = [own] + [views[index].text for views in forms]
        windows = frozenset(t[i:i + RUN] for t in texts for i in range(len(t) - RUN + 1))
        if windows:
            wanted.append((RUN, windows))
        per_view.append(tuple(wanted))
    return tuple(per_view)


def _encoded_forms(key: str) -> list[str]:
    """The key's base64 (both alphabets, the three alignments a substring can start at) and hex."""
    raw = key.encode()
    forms = [raw.hex()]
    for offset in range(3):
        forms.append(base64.b64encode(raw[offset:]).decode().rstrip("="))
        forms.append(base64.urlsafe_b64encode(raw[offset:]).decode().rstrip("="))
    return forms


def _masked_spans(text: str, key: str) -> list[tuple[int, int]]:
    """Masked forms such as `echo-SE****-999`: a prefix and a suffix of the key around a mask."""
    folded = key.lower()
    spans = []
    for match in MASK.finditer(text):
        start, end = match.span()
        before = _longest(lambda n: text[start - n:start].lower() == folded[:n], min(len(key), start))
        after = _longest(lambda n: text[end:end + n].lower() == folded[-n:], min(len(key), len(text) - end))
        if before + after >= MASKED_MIN:
            spans.append((start - before, end + after))
    return spans


def _longest(fits, most: int) -> int:
    """The largest n up to most for which fits(n), or 0."""
    return next((n for n in range(most, 0, -1) if fits(n)), 0)


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """Text with each run of overlapping spans replaced by one MARKER."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        parts += [text[position:start], MARKER]
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _cut(text: str, limit: int) -> str:
    """Text cut to limit characters, never through a MARKER, so no half-marker is left behind."""
    if len(text) <= limit:
        return text
    marker = text.rfind(MARKER[0], max(0, limit - len(MARKER) + 1), limit)
    if marker != -1 and text.startswith(MARKER, marker):
        return text[:marker]
    return text[:limit]
