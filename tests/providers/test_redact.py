"""Credential-shaped text and known secrets are masked before any text leaves the process."""
from __future__ import annotations

import base64
import string
import time
from urllib.parse import quote

import pytest
from hypothesis import given, settings, strategies as st

from app.providers.redact import MAX_TEXT, redact
from tests.security.key_forms import leaks


def test_a_known_secret_is_masked_everywhere_it_appears():
    secret = "relay-key-7f3a9c1e5b2d"
    text = f"invalid key {secret}; you sent {secret}"
    assert redact(text, secret) == "invalid key [redacted]; you sent [redacted]"


def test_several_secrets_and_missing_ones():
    assert redact("a=first-secret b=second-secret", None, "first-secret", "", "second-secret") == \
        "a=[redacted] b=[redacted]"


def test_a_secret_too_short_to_be_a_key_is_left_alone():
    # Masking a 3-character "secret" would garble ordinary words in error messages.
    assert redact("the cat sat", "cat") == "the cat sat"


def test_text_without_credentials_is_unchanged():
    text = "The model `gpt-4o-mini` is overloaded (request id req_123); retry in 20 s."
    assert redact(text, "relay-key-7f3a9c1e5b2d") == text


@pytest.mark.parametrize("text, secret", [
    ("Incorrect API key provided: sk-abcdefghijklmnop1234.", "abcdefghijklmnop1234"),
    ("Incorrect API key provided: sk-proj-Ab_Cd-Ef0123456789.", "Ab_Cd-Ef0123456789"),
    ('{"key": "sk-ant-api03-XYZxyz0987654321"}', "XYZxyz0987654321"),
    ("API key not valid: AIzaSyD-0123456789abcdefXYZ", "0123456789abcdefXYZ"),
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
    ("authorization: bearer tok_ABC123", "tok_ABC123"),
    ("BEARER\ttok_ABC123", "tok_ABC123"),
    ("GET /v1beta/models?key=zzTopSecret42&alt=sse", "zzTopSecret42"),
    ("https://host/path?api_key=zzTopSecret42", "zzTopSecret42"),
    ("https://host/path?apikey=zzTopSecret42", "zzTopSecret42"),
    ("https://host/path?x-goog-api-key=zzTopSecret42", "zzTopSecret42"),
    ("KEY=zzTopSecret42", "zzTopSecret42"),
    ("your waybill key wb-0123456789abcdefghijKLMN was revoked", "0123456789abcdefghijKLMN"),
])
def test_credential_shaped_strings_are_masked(text, secret):
    redacted = redact(text)
    assert secret not in redacted
    assert "[redacted]" in redacted


def test_masking_keeps_the_surrounding_message_readable():
    assert redact("bad key: sk-abcdefghijkl, try again") == "bad key: sk-[redacted], try again"
    assert redact("GET /m?key=zzTopSecret42&alt=sse") == "GET /m?key=[redacted]&alt=sse"
    assert redact("API_KEY=zzTopSecret42 rejected") == "API_KEY=[redacted] rejected"
    assert redact("Authorization: Bearer abc.def, then") == "Authorization: Bearer [redacted], then"
    assert redact("key AIzaSyD-0123456789abcdef is invalid") == "key AIza[redacted] is invalid"


def test_a_secret_is_masked_even_when_it_looks_like_nothing_known():
    secret = "0f8e7d6c5b4a39281706"
    assert secret not in redact(f"upstream rejected {secret}", secret)


def test_redaction_is_idempotent():
    text = "Bearer abc.def sk-abcdefghijkl AIzaSyD-0123456789abcdef ?key=zz42zz42 relay-key-7f3a9c"
    once = redact(text, "relay-key-7f3a9c")
    assert redact(once, "relay-key-7f3a9c") == once


@pytest.mark.parametrize("text, secret", [
    ("https://host/path?access_key=zzTopSecret42", "zzTopSecret42"),
    ("upstream said: x_api_key=zzTopSecret42 is invalid", "zzTopSecret42"),
])
def test_key_assignments_with_a_prefixed_name_are_masked(text, secret):
    # "access_key=…" is a `key=…`; the word boundary before "key" must not let an underscore prefix hide it.
    assert secret not in redact(text)


# --- a known key in every form an upstream could echo it in -------------------------------------

KEY = "echo-SECRET-7Hq2Zx9Lm-ry-999"
RAW = KEY.encode()


def _b64(data: bytes, urlsafe: bool = False, padded: bool = True) -> str:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return encoded if padded else encoded.rstrip("=")


@pytest.mark.parametrize("form", [
    pytest.param(KEY, id="exact"),
    pytest.param(KEY.upper(), id="upper-case"),
    pytest.param(KEY[3:11], id="run-of-8"),
    pytest.param(KEY[9:25], id="longer-run"),
    pytest.param(_b64(RAW), id="base64"),
    pytest.param(_b64(RAW, padded=False), id="base64-unpadded"),
    pytest.param(_b64(b"user:" + RAW), id="base64-alignment-1"),
    pytest.param(_b64(b"Bearer " + RAW), id="base64-alignment-2"),
    pytest.param(_b64(RAW[4:]), id="base64-of-a-substring"),
    pytest.param(_b64(b"Bearer " + RAW, urlsafe=True, padded=False), id="base64url"),
    pytest.param(_b64(RAW)[:20], id="base64-cut-short"),
    pytest.param("".join(f"%{b:02X}" for b in RAW), id="percent"),
    pytest.param("".join(f"%{b:02x}" for b in RAW), id="percent-lower"),
    pytest.param(quote(KEY, safe="").replace("-", "%2D").replace("S", "%53"), id="percent-some"),
    pytest.param("".join(f"\\u{b:04x}" for b in RAW), id="json-escaped"),
    pytest.param("".join(f"&#{b};" for b in RAW), id="html-entities"),
    pytest.param(" ".join(KEY), id="spaced"),
    pytest.param("-".join(KEY), id="dashed"),
    pytest.param("\u200b".join(KEY), id="zero-width-spaced"),
    pytest.param(" ".join(KEY[:10]) + "." + ".".join(KEY[10:]), id="mixed-separators"),
    pytest.param("".join(chr(ord(c) + 0xFEE0) for c in KEY), id="fullwidth"),
    pytest.param(RAW.hex(), id="hex"),
    pytest.param("echo-SEC****ry-999", id="masked"),
    pytest.param("echo-S****-999", id="masked-short"),
    pytest.param("echo-…-999", id="masked-ellipsis"),
    pytest.param("echo-SE... -999", id="masked-dots"),
])
def test_every_form_of_the_key_is_masked_and_the_message_kept(form):
    redacted = redact(f"upstream said: {form}; retry later", KEY)
    assert leaks(redacted, KEY) == []
    assert redacted.startswith("upstream said: ") and redacted.endswith("; retry later")
    assert "[redacted]" in redacted


@pytest.mark.parametrize("text", [
    "echo", "SECRET", "the echo of a call", "ry-999", "Error 999: retry", KEY[:7], KEY[-7:],
    " ".join(KEY[:6]),            # six characters with spaces: fewer than a run
    _b64(RAW[:4]),                # the base64 of four characters: too short to say anything
    "echo****99", "****", "password: ********", "sk-****1234", "key ends …-999",
    "%20%21%22", "\\u0041\\u0042",
])
def test_near_misses_are_left_alone(text):
    message = f"upstream said: {text}."
    assert redact(message, KEY) == message


def test_secrets_shorter_than_a_run_are_masked_only_as_written():
    assert redact("tok: abc123 / a b c 1 2 3", "abc123") == "tok: [redacted] / a b c 1 2 3"


def test_overlapping_forms_become_one_marker():
    assert redact(f"{KEY}{KEY[5:]} {' '.join(KEY)}", KEY) == "[redacted] [redacted]"


def test_redacted_text_is_capped_and_never_cut_through_a_marker():
    assert len(redact("x" * 5000)) == MAX_TEXT
    assert redact("y" * 50, limit=10) == "y" * 10
    cut = redact("x" * 295 + KEY + " tail", KEY, limit=300)
    assert cut == "x" * 295  # the marker would not fit whole: it goes, and no part of the key stays
    assert redact("x" * 290 + KEY, KEY, limit=300) == "x" * 290 + "[redacted]"


def test_a_key_across_the_cap_is_still_recognised():
    # Redacting before cutting: a cut through the spaced form must not leave its first characters behind.
    text = "x" * 280 + " ".join(KEY)
    assert leaks(redact(text, KEY, limit=300), KEY) == []
    assert KEY[:8] not in redact(text, KEY, limit=300).replace(" ", "")


def test_a_long_text_is_redacted_quickly():
    text = ("upstream went away; " * 2000) + KEY
    started = time.perf_counter()
    redact(text, KEY)
    assert time.perf_counter() - started < 0.5


KEY_ALPHABET = string.ascii_letters + string.digits + "_-"
SEPARATORS = [" ", "-", ".", "_", ":", "|", "\t", "\u200b", ", "]


@st.composite
def key_in_some_form(draw) -> tuple[str, str]:
    """A random key and one form of it, drawn with its variations: alignment, alphabet, case, separator."""
    key = draw(st.text(alphabet=KEY_ALPHABET, min_size=16, max_size=64))
    raw = key.encode()
    kind = draw(st.sampled_from(["exact", "run", "base64", "percent", "spaced", "masked"]))
    if kind == "exact":
        return key, key
    if kind == "run":
        start = draw(st.integers(0, len(key) - 8))
        return key, key[start:draw(st.integers(start + 8, len(key)))]
    if kind == "base64":
        prefix = draw(st.binary(max_size=2))
        return key, _b64(prefix + raw, urlsafe=draw(st.booleans()), padded=draw(st.booleans()))
    if kind == "percent":
        return key, "".join(draw(st.sampled_from([f"%{b:02X}", f"%{b:02x}", chr(b)])) for b in raw)
    if kind == "spaced":
        return key, draw(st.sampled_from(SEPARATORS)).join(key)
    mask = draw(st.sampled_from(["****", "…", "..."]))
    return key, key[:draw(st.integers(1, 7))] + mask + key[-draw(st.integers(1, 7)):]


@settings(max_examples=400, deadline=None)
@given(drawn=key_in_some_form(), before=st.text(max_size=60), after=st.text(max_size=60))
def test_no_run_of_a_random_key_survives_any_form(drawn, before, after):
    key, form = drawn
    redacted = redact(before + form + after, key)
    assert not [key[i:i + 8] for i in range(len(key) - 7) if key[i:i + 8] in redacted]
