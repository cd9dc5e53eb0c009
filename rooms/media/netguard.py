"""Which addresses the server may fetch media from: public ones, and hosts an operator lists.

A URL someone brings makes the server connect somewhere (yt-dlp probing a page), so
without this check anyone could make it fetch from its own loopback, the private
network it sits in, or a cloud metadata service (169.254.169.254, fd00:ec2::254).
The rule is applied to every address a host resolves to, and again to the address
actually connected to (``guarded_connection``), so redirects and DNS rebinding
meet the same rule.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from rooms.conf import conf

ALLOWED_SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64 (RFC 6052) embeds an IPv4 address in the last 32 bits; a gateway would turn
# 64:ff9b::7f00:1 into a connection to 127.0.0.1.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


REFUSED = "this URL is not allowed: the server does not fetch from non-public addresses"


class ForbiddenAddress(OSError):
    """A URL or an address the server must not fetch from. ``str()`` is a short human message."""

    address: str = ""


class UnknownHost(OSError):
    """The host name does not resolve."""


def check_url(url: str) -> str:
    """Check scheme and host of ``url`` and every address its host resolves to; return the host."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ForbiddenAddress("only http and https URLs are supported")
    host = parts.hostname
    if not host:
        raise ForbiddenAddress("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise ForbiddenAddress("the URL has an invalid port") from None
    resolve_checked(host, port)
    return host


def resolve_checked(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """Resolve ``host`` and return (family, sockaddr) pairs, refusing if any address is forbidden.

    Every address must pass, not just the first: a name that also resolves to a
    private address could be answered differently at connection time.
    """
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnknownHost(f"cannot resolve host {host!r}: {exc}") from exc
    if not infos:
        raise UnknownHost(f"cannot resolve host {host!r}")
    addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = [
        (family, sockaddr) for family, _, _, _, sockaddr in infos]
    for _, sockaddr in addresses:
        check_address(host, str(sockaddr[0]))
    return addresses


def check_address(host: str, address: str) -> None:
    """Refuse ``address`` (that ``host`` resolved to) unless it is public or explicitly allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if host_allowed(host, ip):
        return
    if not is_public(ip):
        # Generic on purpose: naming the address would let anyone map the server's network by DNS.
        refused = ForbiddenAddress(REFUSED)
        refused.address = str(ip)  # for the server's log, never for the client
        raise refused


def host_allowed(host: str, ip: IPAddress) -> bool:
    """True when VSYNC_MEDIA_ALLOW_HOSTS lists this host name, or the address or a network holding it.

    A listed entry opens exactly itself: allowing 127.0.0.1 does not allow ::1,
    10.0.0.1 or 169.254.169.254.
    """
    return _allowed(host, ip, conf.MEDIA_ALLOW_HOSTS)


def _allowed(host: str, ip: IPAddress, entries: Iterable[str]) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    for entry in entries:
        entry = entry.strip().strip("[]").rstrip(".").lower()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry == name:
                return True
            continue
        if ip in network:
            return True
    return False


def is_public(ip: IPAddress) -> bool:
    """False for loopback, private, link-local (metadata), multicast, reserved and shared addresses.

    IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by
    that IPv4 address as well.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        # Mapped and NAT64 addresses reach exactly the IPv4 address they carry.
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        embedded = [ip.sixtofour, *(ip.teredo or ())]
        if any(inner is not None and not is_public(inner) for inner in embedded):
            return False
    # is_global is False for every special-purpose block in the IANA registries:
    # 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16, 100.64/10, 0/8, ::1, fc00::/7, fe80::/10...
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


# socket.create_connection's "no timeout given" marker; typeshed does not list the private name.
_DEFAULT_TIMEOUT: object = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def guarded_connection(address: tuple[str, int], timeout: float | object = _DEFAULT_TIMEOUT,
                       source_address: tuple[str, int] | None = None) -> socket.socket:
    """``socket.create_connection`` that only ever connects to an address that passed the check.

    The host is resolved once here and the socket connects to that checked numeric
    address, so a second DNS answer cannot slip a private address in between.
    """
    host, port = address
    error: OSError | None = None
    for family, sockaddr in resolve_checked(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"cannot connect to {host}")
