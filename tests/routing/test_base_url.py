"""Base URL checks: http(s) only, link-local and cloud-metadata addresses refused in every spelling, no DNS."""
from __future__ import annotations

import socket

import pytest

from app.routing.base_url import base_url_problem
from app.routing.config_file import ConfigError, apply_config


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """The check reads the URL as written: any lookup fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"base URL check resolved a name: {args}")
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, refuse)


@pytest.mark.parametrize("url", [
    "https://api.openai.com/v1",
    "https://api.anthropic.com",
    "https://generativelanguage.googleapis.com",
    "http://127.0.0.1:9001/v1",          # the simulator, and self-hosted relays on loopback
    "http://localhost:8080/v1",
    "http://[::1]:9000/v1",
    "http://10.0.0.5/v1",                # private networks are where relays live
    "http://100.64.1.1/v1",              # carrier-grade NAT is not Alibaba's metadata address
    "https://relay.example.com:8443/openai/v1",
])
def test_ordinary_upstreams_are_allowed(url):
    assert base_url_problem(url) is None


@pytest.mark.parametrize("url, words", [
    ("ftp://api.openai.com/v1", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("api.openai.com/v1", "http:// or https://"),
    ("https:///v1", "must name a host"),
    ("http://127.0.0.1:99999/v1", "not a valid URL"),
    ("https://user:sk-secret@api.openai.com/v1", "credentials"),
    ("https://api.openai.com/v1#frag", "fragment"),
    ("https://api.openai.com/v 1", "spaces"),
])
def test_other_schemes_and_malformed_urls_are_refused(url, words):
    assert words in base_url_problem(url)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.169.254./",
    "http://2852039166/",                  # the same address as one decimal number
    "http://0xa9fea9fe/",                  # in hex
    "http://0251.0376.0251.0376/",         # in octal
    "http://169.254.43518/",               # with the last two parts joined
    "http://[::ffff:169.254.169.254]/",    # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",
    "http://[fd00:ec2::254]/",             # AWS over IPv6
    "http://100.100.100.200/",             # Alibaba Cloud
    "http://metadata.google.internal/computeMetadata/v1",
    "http://METADATA.Google.Internal./",
    "http://metadata/computeMetadata/v1",
    "http://instance-data.ec2.internal/",
])
def test_cloud_metadata_services_are_refused_by_address_and_by_name(url):
    assert "metadata" in base_url_problem(url)


@pytest.mark.parametrize("url", [
    "http://169.254.1.1/v1",
    "http://[fe80::1]/v1",
    "http://[fe80::1%25eth0]/v1",
    "http://[febf:ffff::1]/v1",
])
def test_link_local_addresses_are_refused(url):
    assert "link-local" in base_url_problem(url)


def test_config_import_refuses_a_metadata_base_url_and_writes_nothing(app):
    document = {"channels": [{"name": "sneaky", "provider": "openai", "lane": "official",
                              "base_url": "http://169.254.169.254/v1", "api_key": "sk-sneaky-0000"}]}
    with pytest.raises(ConfigError) as refused:
        apply_config(document, "evil.toml")
    assert "evil.toml: channels[0] (sneaky): field 'base_url': must not point at a cloud metadata address" \
        in str(refused.value)
    from app.extensions import db
    from app.routing.models import Channel
    assert db.session.scalars(db.select(Channel)).all() == []
