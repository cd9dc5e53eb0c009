"""The small pieces of raw ASGI HTTP that long polling and SSE share."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qs

from django.conf import settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
# On every raw-ASGI answer, as Django's SecurityMiddleware puts it on its own: a JSON body
# is never sniffed into something a browser would run.
NOSNIFF = (b"x-content-type-options", b"nosniff")


def query(scope: Scope) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return cast(bytes, value)
    return None


def request_host(scope: Scope) -> str | None:
    """The Host the request was sent to (``name[:port]``): the header, else the server's address, as Django reads it."""
    host = header(scope, b"host")
    if host:
        return host.decode("latin-1")
    server = scope.get("server")
    if not server or server[0] is None:
        return None
    name = f"[{server[0]}]" if ":" in server[0] else server[0]
    return name if server[1] is None else f"{name}:{server[1]}"


def client_address(scope: Scope) -> str | None:
    """The client's address: the peer's, or what a proxy in settings.VSYNC_TRUSTED_PROXIES reports for it.

    X-Forwarded-For is read from the right: each trusted proxy appends the address it
    got the request from, and anything left of the first untrusted hop is the client's
    own claim, which anyone can forge. X-Real-IP (nginx's) is used when there is none.
    """
    peer = (scope.get("client") or (None,))[0]
    trusted = set(getattr(settings, "VSYNC_TRUSTED_PROXIES", ()) or ())
    if peer is None or peer not in trusted:
        return peer
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in trusted:
                return _address_or(hop, peer)
        return _address_or(hops[0], peer) if hops else peer
    real_ip = header(scope, b"x-real-ip")
    return _address_or(real_ip.decode("latin-1").strip(), peer) if real_ip else peer


def _address_or(candidate: str, fallback: str) -> str:
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return fallback  # not an address: a misconfigured proxy, not the client's choice


# rooms.access.member_cookie_name: one cookie per room, named after its slug.
MEMBER_COOKIE_PREFIX = "vsync_member_"


def member_token(scope: Scope, slug: str, *, from_query: bool) -> str | None:
    """The member token: ``Authorization: Bearer``, the room's cookie, or (``from_query``) ``?token=``."""
    authorization = header(scope, b"authorization")
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    cookies = header(scope, b"cookie")
    if cookies:
        wanted = MEMBER_COOKIE_PREFIX + slug
        for pair in cookies.decode("latin-1").split(";"):
            name, _, value = pair.strip().partition("=")
            if name == wanted and value:
                return value.strip('"')
    if from_query:
        return query(scope).get("token") or None
    return None


async def respond(send: Send, status: int, body: bytes = b"", *, content_type: bytes = JSON,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    all_headers = [(b"cache-control", b"no-cache"), NOSNIFF, *(headers or [])]
    if body:
        all_headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, status: int, error: str, field: str | None = None) -> None:
    body: dict[str, Any] = {"error": error}
    if status == 400:
        body["field"] = field
    await respond(send, status, json.dumps(body).encode())


async def close_on_disconnect(receive: Receive, on_disconnect: Callable[[], None]) -> None:
    """Read the request to its end, then wait for the client to go away and say so at once."""
    while (await receive())["type"] != "http.disconnect":
        pass
    on_disconnect()
