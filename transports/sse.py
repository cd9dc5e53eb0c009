"""Server-sent events: ``GET /api/rooms/{slug}/events``.

``id: <version>`` / ``event: state`` / ``data: <state JSON>`` per version. The current
state comes first unless ``Last-Event-ID`` (header) or ``?last_event_id=`` equals it.
"""

from __future__ import annotations

import asyncio

from transports.asgi_http import Receive, Scope, Send, close_on_disconnect, header, query, respond_error
from transports.hub import NoSuchRoom, hub
from transports.resume import BadVersion, parse_version

# How long a browser waits before reconnecting a dropped stream: quick enough that a
# viewer misses little, slow enough that a restarting server is not stampeded.
RECONNECT_MS = 2000
# The heartbeat interval lives in the hub (HEARTBEAT_INTERVAL_S): one ticker for all streams.
HEARTBEAT = b": keepalive\n\n"

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
        mailbox = await hub.subscribe(slug, known_version=known, reset_unknown=True, heartbeat=True)
    except NoSuchRoom:
        await respond_error(send, 404, f"no room {slug!r}")
        return
    watcher = asyncio.ensure_future(close_on_disconnect(receive, mailbox.close))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"retry: %d\n\n" % RECONNECT_MS, "more_body": True})
        while True:
            snapshot = await mailbox.get()
            if mailbox.closed:
                break
            if snapshot is None:
                await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
            else:
                await send(snapshot.sse_message)
    finally:
        hub.unsubscribe(mailbox)
        watcher.cancel()
