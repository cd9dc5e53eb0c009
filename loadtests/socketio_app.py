"""The lab's socketio peer row: vsync's application, and python-socketio under ``/socket.io/``.

The article's app pushed its state over Socket.IO (Engine.IO over WebSocket, long polling as
the fallback). This serves the same rooms that way, so that the lab can set Socket.IO's
protocol and machinery against plain WebSocket and SSE on one server:

    uvicorn loadtests.socketio_app:application --interface asgi3 ...     (loadtests.runner does it)
    manage.py runserver --settings loadtests.socketio_settings           (daphne)

A client connects with ``?room=<slug>`` (``io({query: {room}})``) and gets ``state`` events:
the room's state (the contract's fields) on connect and on every new version. Each process
takes the room's versions from vsync's hub as one stream per room (hub.attach, as every
transport does) and hands each version to python-socketio once, ``emit("state", ..., room=slug)``:
its rooms, packets and per-client queues are the cost being measured. Lab only: the
product's transports never import this, and room access (passwords, bans, kicks) is not
checked here; the lab's rooms are open rooms.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import socketio

from vsync.asgi import application as vsync_application  # first: it sets Django up

# isort: split
from transports.hub import NoSuchRoom, hub
from transports.streams import WS, Stream

logger = logging.getLogger(__name__)

EVENT = "state"
NAMESPACE = "/"
# What the hub hands a WebSocket stream per version (transports.encoding.Snapshot.ws_message).
_STATE_PREFIX = '{"type":"state","state":'


class RoomRelay:
    """One room's versions, from the hub (one stream per room and process) to python-socketio's room.

    ``emitted`` is the version whose emit last took the room's members: python-socketio reads
    them when an emit starts, in the same step that sets ``emitted``.
    """

    def __init__(self, server: socketio.AsyncServer, slug: str) -> None:
        self.server, self.slug = server, slug
        self.members = 0
        self.emitted = -1
        self.stream: Stream | None = None
        self._attaching: asyncio.Future[None] | None = None

    async def attached(self) -> None:
        """Subscribed to the room through the hub; raises NoSuchRoom."""
        if self._attaching is None:
            self._attaching = asyncio.ensure_future(self._attach())
        await asyncio.shield(self._attaching)

    async def _attach(self) -> None:
        self.stream = await hub.attach(self.slug, self.send, mode=WS, known_version=None)

    async def send(self, message: dict[str, Any]) -> None:
        """The stream's ``send``: a state becomes one emit to the room; chat is not this row's."""
        if message["type"] == "websocket.close":  # the hub ended the stream
            for sid, _ in tuple(self.server.manager.get_participants(NAMESPACE, self.slug)):
                await self.server.disconnect(sid)
            return
        text = message.get("text") or ""
        if not text.startswith(_STATE_PREFIX):
            return
        state = json.loads(text[len(_STATE_PREFIX):-1])
        self.emitted = state["version"]
        await self.server.emit(EVENT, state, room=self.slug)


class Rooms:
    """python-socketio's connect and disconnect handlers: a client is a member of one room."""

    def __init__(self, server: socketio.AsyncServer) -> None:
        self.server = server
        self.relays: dict[str, RoomRelay] = {}
        self.room_of: dict[str, str] = {}

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        slug = (parse_qs(environ.get("QUERY_STRING", "")).get("room") or [""])[-1]
        if not slug:
            raise socketio.exceptions.ConnectionRefusedError("room is required (?room=<slug>)")
        relay = self.relays.get(slug)
        if relay is None:
            relay = self.relays[slug] = RoomRelay(self.server, slug)
        # Counted before the wait: a member leaving meanwhile does not drop the room's stream.
        relay.members += 1
        self.room_of[sid] = slug
        try:
            await relay.attached()
        except NoSuchRoom:
            self._leave(sid)
            raise socketio.exceptions.ConnectionRefusedError(f"no room {slug!r}") from None
        if sid not in self.room_of:
            return  # the client left while the room was being subscribed
        await self.server.enter_room(sid, slug)
        newest = hub.newest(slug)
        # The state on connect, as on every transport: unless the room's next emit (its members
        # read from now on) brings it, this client is sent the newest itself; never both.
        if newest is not None and relay.emitted >= newest.version:
            await self.server.emit(EVENT, newest.state, to=sid)

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        self._leave(sid)

    def _leave(self, sid: str) -> None:
        slug = self.room_of.pop(sid, None)
        relay = self.relays.get(slug) if slug is not None else None
        if relay is None:
            return
        relay.members -= 1
        if relay.members <= 0:
            del self.relays[relay.slug]
            if relay.stream is not None:
                hub.unsubscribe(relay.stream)


def build(server: socketio.AsyncServer | None = None) -> socketio.ASGIApp:
    """vsync's application, with ``server`` (a fresh AsyncServer by default) under ``/socket.io/``."""
    # always_connect: the client has its CONNECT before the handler's first emit (the state).
    server = server or socketio.AsyncServer(async_mode="asgi", always_connect=True)
    rooms = Rooms(server)
    server.on("connect", rooms.connect)
    server.on("disconnect", rooms.disconnect)
    return socketio.ASGIApp(server, other_asgi_app=vsync_application, socketio_path="socket.io")


application = build()
