"""One origin rule and one Host rule, for every path and transport (HTTP views, raw ASGI, WebSockets).

A browser's ``Origin`` is ``scheme://host[:port]``. It is ours when it is exactly the
origin the request was sent to (the request's own scheme, and a Host that
ALLOWED_HOSTS admits, default ports normalised), or one of CSRF_TRUSTED_ORIGINS
(``https://*.example.com`` entries allowed, as Django allows them). Comparing the
host name alone would let ``http://localhost:9999`` (any other program on the
viewer's machine) or ``http://`` over an ``https`` site ride a viewer's cookies.
No Origin at all is a non-browser client (curl, locust): it passes, it has no cookies
to ride. ``null`` (sandboxed frames, file: pages) never passes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# A WebSocket handshake is an http(s) request; its Origin is the page's http(s) origin.
_PAGE_SCHEME = {"ws": "http", "wss": "https"}


def host_allowed(host: str | None) -> bool:
    """The Host header (``name[:port]``) names one of ALLOWED_HOSTS; Django's own rule, for raw ASGI too."""
    if not host:
        return False
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def origin_allowed(origin: str | None, *, scheme: str, host: str | None) -> bool:
    """True for no Origin, for the request's own origin (``scheme`` and Host ``host``), or a trusted one."""
    if not origin:
        return True
    key = _origin_key(origin)
    if key is None:
        return False
    if any(_trusted_match(key, entry) for entry in settings.CSRF_TRUSTED_ORIGINS):
        return True
    if not host_allowed(host):
        return False
    own_scheme = _PAGE_SCHEME.get(scheme.lower(), scheme.lower())
    return key == _origin_key(f"{own_scheme}://{host}")


def _origin_key(origin: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) with the default port filled in; None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    hostname = parts.hostname.lower().rstrip(".")
    return scheme, hostname, str(port) if port is not None else DEFAULT_PORTS[scheme]


def _trusted_match(key: tuple[str, str, str], entry: str) -> bool:
    wildcard = "://*." in entry
    trusted = _origin_key(entry.replace("://*.", "://", 1) if wildcard else entry)
    if trusted is None:
        return False
    scheme, hostname, port = key
    if (scheme, port) != (trusted[0], trusted[2]):
        return False
    return hostname == trusted[1] or (wildcard and hostname.endswith("." + trusted[1]))
