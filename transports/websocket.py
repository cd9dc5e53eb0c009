"""WebSocket: ``/ws/rooms/{slug}[?since=<version>][&chat_after=<id>]``.

Server → client: ``{"type": "state", "state": {...}}`` on connect (unless ``since``
already equals the current version) and on every change; ``{"type": "chat", "message"}``
for every chat message, in id order, none twice (after ``chat_after``'s backlog: the
messages after that id, so a reconnect loses none; without it, from now on);
``{"type": "chat_delete", "id"}``; ``{"type": "chat_reset", "after"}`` when the socket
fell more than transports.streams.CHAT_PENDING_MAX messages behind (re-read
``GET .../chat?after=<after>``). Client → server: ``command`` (answered by ``ack``),
``chat`` (``{"ref", "client_id", "text"}``, answered by ``ack`` with ``message`` as
``POST .../chat``), ``time`` (answered by ``time``), ``presence``
(answered only on failure) and ``ping`` (answered by ``pong``). Bad input
answers ``{"type": "error", "error": ..., "field": ...}`` and keeps the socket open;
a message over 16 KiB is refused the same way, unread.

Close codes (right after the handshake, or later for 4401/4403):
  4400  the ``since`` or ``chat_after`` query parameter is not a version / message id
  4401  the room needs a member token, or the token is not valid for it (also when a
        password set later shuts the connection out)
  4403  banned, or kicked (rooms.signals.member_ended)
  4404  no such room
  4429  this address holds its cap of open connections (VSYNC_MAX_CONNECTIONS_PER_ADDRESS)
  4503  the server could not subscribe to the room (channel layer or database unavailable)

A command or chat message while the database does not answer gets an ``ack`` with
``accepted: false``, ``reason: "unavailable"``, ``error`` and ``status: 503``; a presence
update an ``error``; the socket stays open.

The member token comes from ``Authorization: Bearer``, the room's cookie or ``?token=``.

Keepalive: the servers ping at the protocol level (daphne every 20 s, closing after
30 s without an answer; ``vsync.launcher`` gives uvicorn the same figures), so
the application sends no pings of its own; ``ping`` exists for clients that want
an application-level round trip.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from channels.db import database_sync_to_async

from rooms.api.http import RESULT_STATUS
from rooms.chat import chat_submit
from rooms.commands import MAX_BODY_BYTES
from rooms.intake import access_for, ack_fields, command_submit, presence_submit
from rooms.results import Result
from transports.admission import DATABASE_DOWN, Refused, admit, database_refusal
from transports.asgi_http import Receive, Scope, Send, query
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


class NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them unless told.
    raise NotFinite(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400
        raise NotFinite(f"{text[:32]} is out of range for a number")
    return number


class RoomSocket:
    """One WebSocket viewer of one room: the hub writes its states, this answers what the client sends."""

    __slots__ = ("admission", "receive", "scope", "send", "slug", "stream")

    def __init__(self, scope: Scope, receive: Receive, send: Send, slug: str) -> None:
        self.scope, self.receive, self.send, self.slug = scope, receive, send, slug

    async def run(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        await self.send({"type": "websocket.accept"})
        params = query(self.scope)
        try:
            since = parse_version(params.get("since"))
            chat_after = parse_version(params.get("chat_after"))
        except BadVersion:
            await self.send({"type": "websocket.close", "code": CLOSE_BAD_SINCE})
            return
        try:
            self.admission = await admit(self.scope, self.slug, token_in_query=True)
            self.stream = await hub.attach(self.slug, self.send, mode=WS, known_version=since,
                                           admission=self.admission, chat_after=chat_after)
        except Refused as refused:
            await self.send({"type": "websocket.close", "code": refused.close_code})
            return
        except NoSuchRoom:
            await self.send({"type": "websocket.close", "code": CLOSE_NO_SUCH_ROOM})
            return
        except Exception as exc:
            await self.send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
            if database_refusal(exc) is None:
                raise
            return
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
        try:
            text = json.dumps(message, allow_nan=False)
        except (ValueError, RecursionError):  # a ``ref`` that cannot be echoed
            text = json.dumps(_error("ref cannot be echoed", "ref"))
        await self.send({"type": "websocket.send", "text": text})

    async def _answer(self, raw: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            return _error("JSON nested too deeply", "body")
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(str(exc) if isinstance(exc, NotFinite) else "malformed JSON", "body")
        if not isinstance(message, dict):
            return _error("a message must be a JSON object", "body")
        kind, ref = message.get("type"), message.get("ref")
        try:
            return await self._dispatch(kind, message, ref)
        except Exception as exc:
            if database_refusal(exc) is None:
                raise
            if kind in ("command", "chat"):
                return {"type": "ack", "ref": ref, "accepted": False, "reason": "unavailable", "error": DATABASE_DOWN,
                        "status": 503}
            return _error(DATABASE_DOWN, None, ref)

    async def _dispatch(self, kind: Any, message: dict[str, Any], ref: Any) -> dict[str, Any] | None:
        if kind == "command":
            return await self._command(message.get("command"), ref)
        if kind == "chat":
            return await self._chat(message, ref)
        if kind == "time":
            t0 = message.get("t0")
            if isinstance(t0, bool) or not isinstance(t0, int | float) or not math.isfinite(t0):
                return _error("t0 must be a finite number", "t0", ref)
            return {"type": "time", "t0": t0, "server_ms": time.time() * 1000.0}
        if kind == "presence":
            # Access is asked again per message (token and address): a ban takes effect at once.
            result = await database_sync_to_async(presence_submit)(
                slug=self.slug, data=message.get("presence"), token=self.admission.token,
                address=self.admission.address)
            if not result.accepted:
                return _error(result.error or "presence refused", result.field, ref)
            return None
        if kind == "ping":
            return {"type": "pong", "ref": ref} if ref is not None else {"type": "pong"}
        return _error("unknown type; expected command, chat, time, presence or ping", "type", ref)

    async def _chat(self, message: dict[str, Any], ref: Any) -> dict[str, Any]:
        # rooms.chat's service, with the access asked now (a ban, a mute, a password take effect at once).
        body = {"client_id": message.get("client_id"), "text": message.get("text")}
        result = await database_sync_to_async(_chat_submit)(slug=self.slug, data=body, token=self.admission.token,
                                                            address=self.admission.address)
        status = 201 if result.accepted else RESULT_STATUS[result.kind]
        return {"type": "ack", "ref": ref, **ack_fields(result), "status": status}

    async def _command(self, command: Any, ref: Any) -> dict[str, Any]:
        result = await database_sync_to_async(command_submit)(
            slug=self.slug, data=command, token=self.admission.token, address=self.admission.address)
        ack: dict[str, Any] = {"type": "ack", "ref": ref, **ack_fields(result), "status": RESULT_STATUS[result.kind]}
        if "state" not in ack:
            newest = hub.newest(self.slug)
            if newest is not None:
                ack["state"] = newest.state
        return ack


def _chat_submit(*, slug: str, data: Any, token: str | None, address: str | None) -> Result:
    access = access_for(slug=slug, access=None, token=token, address=address)
    if isinstance(access, Result):
        return access
    return chat_submit(slug=slug, access=access, data=data)
