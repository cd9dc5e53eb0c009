"""Short polling: the current state with an ETag, 304 when the client already has it.

Served as raw ASGI in front of Django (transports.routing) from the hub's newest
snapshot, already encoded: a poll costs no database read and no thread hop.
Commands (POST .../commands) are the HTTP API's (rooms.api.commands).
"""

from __future__ import annotations

from transports.admission import admit
from transports.asgi_http import Receive, Scope, Send, header, respond, respond_error
from transports.hub import hub, respond_refusal


def etag_for(version: int) -> str:
    return f'"{version}"'


def etag_matches(header: str | None, version: int) -> bool:
    if not header:
        return False
    wanted = etag_for(version)
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or wanted in tags


async def app(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await respond_error(send, 405, "use GET")
        return
    try:
        await admit(scope, slug, token_in_query=False)
        snapshot = await hub.current(slug)
    except Exception as exc:
        if not await respond_refusal(send, slug, exc):
            raise
        return
    if_none_match = header(scope, b"if-none-match")
    if etag_matches(if_none_match.decode("latin-1") if if_none_match else None, snapshot.version):
        await respond(send, 304, headers=[(b"etag", etag_for(snapshot.version).encode())])
        return
    await send(snapshot.poll_start)
    await send(snapshot.poll_body if scope["method"] == "GET" else {"type": "http.response.body", "body": b""})
