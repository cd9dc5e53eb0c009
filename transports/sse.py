"""Server-sent events: ``GET /api/rooms/{slug}/events``.

``id: <version>`` / ``event: state`` / ``data: <state JSON>`` per version. The current
state comes first unless ``Last-Event-ID`` (header) or ``?last_event_id=`` equals it.
"""

from __future__ import annotations

from transports.asgi_http import Receive, Scope, Send, header, query, respond_error
from transports.hub import NoSuchRoom, hub
from transports.resume import BadVersion, parse_version
from transports.streams import SSE

# How long a browser waits before reconnecting a dropped stream: quick enough that a
# viewer misses little, slow enough that a restarting server is not stampeded.
RECONNECT_MS = 2000
# Heartbeats (transports.streams.SSE_HEARTBEAT) come from one ticker in the hub for all
# streams (transports.hub.HEARTBEAT_INTERVAL_S), not from a timer per connection.

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def app(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    if scope["method"] != "GET":
        await respond_error(send, 405, "use GET")
        return
    try:
        known = parse_version(header(scope, b"last-event-id") or query(scope).get("last_event_id"))
    except BadVersion:
        known = None  # an id we never issued: start over with the current state
    try:
        await hub.ensure_room(slug)
    except NoSuchRoom:
        await respond_error(send, 404, f"no room {slug!r}")
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"retry: %d\n\n" % RECONNECT_MS, "more_body": True})
    # From here on the hub writes the events (and heartbeats) itself; this coroutine
    # only waits for the client to leave, so that the hub forgets it at once.
    stream = await hub.attach(slug, send, mode=SSE, known_version=known)
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        hub.unsubscribe(stream)
