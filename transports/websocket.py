"""WebSocket: ``/ws/rooms/{slug}[?since=<version>]``.

Server → client: ``{"type": "state", "state": {...}}`` on connect (unless ``since``
already equals the current version) and on every change. Client → server:
``command`` (answered by ``ack``), ``time`` (answered by ``time``), ``presence``
(answered only on failure) and ``ping`` (answered by ``pong``). Bad input
answers ``{"type": "error", "error": ..., "field": ...}`` and keeps the socket open;
a message over 16 KiB is refused the same way, unread.

Close codes:
  4400  the ``since`` query parameter is not a version
  4404  no such room
  4503  the server could not subscribe to the room (channel layer unavailable)

Keepalive: the servers ping at the protocol level (daphne every 20 s, closing after
30 s without an answer; ``vsync.launcher`` gives uvicorn the same figures), so
the application sends no pings of its own; ``ping`` exists for clients that want
an application-level round trip.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from rooms.commands import MAX_BODY_BYTES
from rooms.intake import submit_command, submit_presence
from transports.asgi_http import Receive, Scope, Send
from transports.hub import NoSuchRoom, hub
from transports.resume import BadVersion, parse_version
from transports.streams import WS

WS_PING_INTERVAL_S = 20.0  # what daphne does by default; passed to uvicorn by vsync.launcher
WS_PING_TIMEOUT_S = 30.0

CLOSE_BAD_SINCE = 4400
CLOSE_NO_SUCH_ROOM = 4404
CLOSE_UNAVAILABLE = 4503


def _error(error: str, field: str | None = None, ref: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", "error": error, "field": field}
    if ref is not None:
        message["ref"] = ref
    return message


class RoomSocket:
    """One WebSocket viewer of one room: the hub writes its states, this answers what the client sends."""

    __slots__ = ("receive", "scope", "send", "slug", "stream")

    def __init__(self, scope: Scope, receive: Receive, send: Send, slug: str) -> None:
        self.scope, self.receive, self.send, self.slug = scope, receive, send, slug

    async def run(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        await self.send({"type": "websocket.accept"})
        try:
            since = parse_version(parse_qs(self.scope.get("query_string", b"").decode()).get("since", [None])[-1])
        except BadVersion:
            await self.send({"type": "websocket.close", "code": CLOSE_BAD_SINCE})
            return
        try:
            self.stream = await hub.attach(self.slug, self.send, mode=WS, known_version=since)
        except NoSuchRoom:
            await self.send({"type": "websocket.close", "code": CLOSE_NO_SUCH_ROOM})
            return
        except Exception:
            await self.send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
            raise
        # The hub writes states to the socket itself; this coroutine answers the client
        # (in this frame, not a nested one: it stays suspended for the socket's whole life).
        try:
            while True:
                event = await self.receive()
                if event["type"] == "websocket.disconnect":
                    return
                if event["type"] != "websocket.receive":
                    continue
                text = event.get("text")
                raw = text if text is not None else event.get("bytes") or b""
                size = len(raw.encode()) if isinstance(raw, str) else len(raw)
                if size > MAX_BODY_BYTES:
                    await self._reply(_error(f"message is larger than {MAX_BODY_BYTES} bytes", "body"))
                    continue
                reply = await self._answer(raw)
                if reply is not None:
                    await self._reply(reply)
        finally:
            hub.unsubscribe(self.stream)

    async def _reply(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.send", "text": json.dumps(message, allow_nan=False)})

    async def _answer(self, raw: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error("malformed JSON", "body")
        if not isinstance(message, dict):
            return _error("a message must be a JSON object", "body")
        kind, ref = message.get("type"), message.get("ref")
        if kind == "command":
            return await self._command(message.get("command"), ref)
        if kind == "time":
            t0 = message.get("t0")
            if isinstance(t0, bool) or not isinstance(t0, int | float):
                return _error("t0 must be a number", "t0", ref)
            return {"type": "time", "t0": t0, "server_ms": time.time() * 1000.0}
        if kind == "presence":
            outcome = await database_sync_to_async(submit_presence)(self.slug, message.get("presence"))
            if outcome.status != 200:
                return _error(outcome.body.get("error", "presence refused"), outcome.body.get("field"), ref)
            return None
        if kind == "ping":
            return {"type": "pong", "ref": ref} if ref is not None else {"type": "pong"}
        return _error("unknown type; expected command, time, presence or ping", "type", ref)

    async def _command(self, command: Any, ref: Any) -> dict[str, Any]:
        outcome = await database_sync_to_async(submit_command)(self.slug, command)
        ack: dict[str, Any] = {"type": "ack", "ref": ref, "accepted": bool(outcome.body.get("accepted")),
                               "status": outcome.status}
        for key in ("reason", "error", "field", "state"):
            if key in outcome.body:
                ack[key] = outcome.body[key]
        if "state" not in ack:
            newest = hub.newest(self.slug)
            if newest is not None:
                ack["state"] = newest.state
        return ack
