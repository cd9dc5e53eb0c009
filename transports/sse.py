"""Server-sent events: ``GET /api/rooms/{slug}/events``.

``id: <version>.<chat_id>`` / ``event: state`` / ``data: <state JSON>`` per version, and
``id: <version>.<chat_id>`` / ``event: chat`` / ``data: <message JSON>`` per chat message
(the id: what this stream had delivered of each; a bare ``<version>`` while it has no
chat position, transports.encoding). ``event: chat-delete`` (``{"id"}``) and
``event: chat-reset`` (``{"after"}``: re-read ``GET .../chat?after=``) carry no id.

Resume from ``Last-Event-ID`` (header) or ``?last_event_id=``: the current state first
unless the version part equals it, then the chat messages after the chat part, in order.
A bare version (v1) gets the newest chat messages, like ``GET .../chat?after=0``; no id
at all, chat from now on. ``?chat_after=<id>`` sets the chat part explicitly.
"""

from __future__ import annotations

from transports.admission import admit
from transports.asgi_http import NOSNIFF, Receive, Scope, Send, header, query, respond_error
from transports.hub import hub, respond_refusal
from transports.resume import BadVersion, parse_event_id, parse_version
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
    NOSNIFF,
]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
RETRY = {"type": "http.response.body", "body": b"retry: %d\n\n" % RECONNECT_MS, "more_body": True}


async def app(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    if scope["method"] != "GET":
        await respond_error(send, 405, "use GET")
        return
    params = query(scope)
    try:
        # ``since`` as on the other transports: a client that sends one gets a 400 for a bad one.
        since = parse_version(params.get("since"))
    except BadVersion as exc:
        await respond_error(send, 400, str(exc), "since")
        return
    try:
        explicit_chat = parse_version(params.get("chat_after"))
    except BadVersion as exc:
        await respond_error(send, 400, str(exc), "chat_after")
        return
    try:
        known, chat_after = parse_event_id(header(scope, b"last-event-id") or params.get("last_event_id"))
    except BadVersion:
        known, chat_after = None, None  # an id we never issued: start over with the current state
    if known is None:
        known = since
    if explicit_chat is not None:
        chat_after = explicit_chat
    # Admitted and counted (the per-address cap) before the response starts, so that a
    # refusal is a plain status; the hub holds the stream until the head has been sent.
    try:
        admission = await admit(scope, slug, token_in_query=True)
        stream = await hub.attach(slug, send, mode=SSE, known_version=known, admission=admission, hold=True,
                                  chat_after=chat_after)
    except Exception as exc:
        if not await respond_refusal(send, slug, exc):
            raise
        return
    # From here on the hub writes the events (and heartbeats); this coroutine only waits
    # for the client to leave (or for the response to end: the servers then say the client
    # left), so that the hub forgets it at once.
    try:
        await send(START)
        await send(RETRY)
        hub.release(stream)
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        hub.unsubscribe(stream)
