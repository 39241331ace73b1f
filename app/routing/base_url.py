"""Where a channel may point: http(s) only, never at link-local or cloud-metadata addresses.

A channel's key travels to its base URL, and an admin's test button makes the server call it, so a
base URL aimed at an instance metadata service would hand out the host's cloud credentials. The
check reads the URL as written and never resolves DNS: a hostname is refused by name, an address by
every spelling a resolver accepts (dotted, decimal, hex, octal, IPv4-mapped IPv6). Loopback and
private addresses stay allowed: self-hosted relays and the simulator live there.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean
    "fd00:ec2::254",    # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
METADATA_HOSTS = frozenset((
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
))


def base_url_problem(url: str) -> str | None:
    """What makes a base URL unusable for a channel, in words, or None when it is fine."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "must name a host, as in https://api.openai.com/v1"
    if any(char.isspace() or not char.isprintable() for char in url.strip()):
        return "must not contain spaces or control characters"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials: set the channel's key instead"
    if parts.fragment:
        return "must not have a #fragment"
    if host in METADATA_HOSTS:
        return f"must not point at a cloud metadata service ({host})"
    return _address_problem(host)


def _address_problem(host: str) -> str | None:
    for address in _addresses(host):
        if address in METADATA_ADDRESSES:
            return f"must not point at a cloud metadata address ({address})"
        if any(address in network for network in LINK_LOCAL if network.version == address.version):
            return f"must not point at a link-local address ({address})"
    return None


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a literal host spells, with an IPv6 address's embedded IPv4 one; none for a name."""
    found = []
    try:
        found.append(ipaddress.ip_address(host.split("%", 1)[0]))  # a zone id (fe80::1%eth0) names no address
    except ValueError:
        try:
            # inet_aton reads the legacy forms resolvers still accept (2852039166, 0xa9fea9fe, 0251.0376.0251.0376);
            # it never looks anything up.
            found.append(ipaddress.IPv4Address(socket.inet_aton(host)))
        except OSError:
            return []
    address = found[0]
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and int(address) >> 32 == 0 and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address))  # IPv4-compatible ::a.b.c.d
        if embedded is not None:
            found.append(embedded)
    return found
