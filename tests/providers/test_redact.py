"""Credential-shaped text and known secrets are masked before any text leaves the process."""
from __future__ import annotations

import pytest

from app.providers.redact import redact


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
