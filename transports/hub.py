"""The per-process hub: one channel-layer subscription per room with local viewers, fanned out in-process.

Each version is encoded once (transports.encoding), then pushed to every local
connection of the room from one loop (transports.streams): latest wins, one pending
snapshot per connection at most, versions only go up.

Chat is the second discipline on the same rooms, subscriptions and streams: a log. Each
committed message is encoded once and handed to every connection in id order, none
twice; transports.chat_log decides the order and fills gaps, transports.streams bounds
what a slow reader holds. Which connections end when a member is kicked or the room's
access narrows is transports.endings'; the hub carries those signals to every process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from rooms.models import SLUG_PATTERN, Room
from rooms.state import RoomState
from transports import endings
from transports.admission import Admission, Refused, connection_cap, database_refusal, forget_room, respond_refused
from transports.asgi_http import respond_error
from transports.chat_log import ChatGone, ChatLog, backlog, page_after, read_chat_seqs, read_gap
from transports.encoding import ChatFrame, Snapshot, chat_delete_frames
from transports.resume import needs_snapshot
from transports.streams import POLL, STREAMS, ChatPoll, LongPoll, Send, Stream, WrittenStream, counts
from vsync.observability import connection_closed, connection_opened, fanout_observed

logger = logging.getLogger(__name__)

# Pub/sub is at-most-once: a Redis restart or a dropped connection loses what was in
# flight. The database is the truth, so every few seconds the hub compares the
# versions of its rooms with the database and delivers what it missed.
RECONCILE_INTERVAL_S = 3.0
# Long pollers leave and come back every cycle; keeping the room's subscription (and
# its cached newest snapshot) for a while spares a subscribe and a database read per poll.
ROOM_LINGER_S = 30.0
# SSE needs a comment at least every 15 s (proxies drop idle streams at 30 to 60 s).
# One ticker for every stream, not a timer per connection; 10 s keeps gaps under 15 s.
# VSYNC_SSE_HEARTBEAT_S overrides it for tests that want to see a heartbeat quickly.
HEARTBEAT_INTERVAL_S = float(os.environ.get("VSYNC_SSE_HEARTBEAT_S", "10"))
# Layer failures are retried after this pause rather than in a hot loop.
RETRY_PAUSE_S = 1.0
# A client over its address's connection cap is told to wait this long: a closed tab frees
# its slot at once, and a reconnect loop should not hammer the server meanwhile.
RETRY_AFTER_CAP_S = 5

_SLUG = re.compile(f"^{SLUG_PATTERN}$")


class NoSuchRoom(LookupError):
    pass


async def respond_refusal(send: Send, slug: str, exc: Exception) -> bool:
    """Answer why a raw-ASGI endpoint could not admit or attach (401/403/404/429/503); False: not a refusal."""
    refused = exc if isinstance(exc, Refused) else database_refusal(exc)
    if refused is not None:
        await respond_refused(send, refused)
        return True
    if isinstance(exc, NoSuchRoom):
        await respond_error(send, 404, f"no room {slug!r}")
        return True
    return False


class _Room:
    __slots__ = ("chat", "idle_since", "newest", "ready", "streams")

    def __init__(self, ready: asyncio.Task[None]) -> None:
        self.streams: set[Stream] = set()
        self.newest: Snapshot | None = None
        self.ready = ready
        self.idle_since: float | None = None
        self.chat = ChatLog()


class Hub:
    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: str | None = None
        self._started: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._per_address: dict[str, int] = {}

    # -- viewers -----------------------------------------------------------------

    async def attach(self, slug: str, send: Send | None, *, mode: str, known_version: int | None,
                     admission: Admission | None = None, hold: bool = False, chat_after: int | None = None) -> Stream:
        """Start delivering the room's versions to one connection, first the newest if the resume rule says so.

        ``hold``: deliver nothing until ``release(stream)`` (SSE sends its response head
        first). ``chat_after``: the client has the chat up to this id and gets the messages
        after it first (0: the newest page); None: chat from now on. Raises NoSuchRoom, or
        Refused (429) when the client's address holds its cap of connections.
        """
        room = await self._room(slug)
        address = admission.address if admission is not None else None
        self._check_cap(address)
        identity: dict[str, Any] = {"known_version": known_version, "address": address}
        if admission is not None:
            identity.update(client_id=admission.client_id, token=admission.token)
        stream: Stream
        if mode == POLL:
            stream = LongPoll(slug, **identity)
        else:
            assert send is not None  # only a long poll writes its own answer
            stream = STREAMS[mode](slug, send, newest=lambda: room.newest, **identity)
            # A busy stream is pushed nothing; release() catches it up. Held while its
            # chat backlog is read too: live messages queue behind it meanwhile.
            stream.busy = hold or chat_after is not None
        stream.chat_id = room.chat.chat_id if chat_after is None else chat_after
        self._add(room, stream)
        if chat_after is not None and isinstance(stream, WrittenStream):
            try:
                frames, complete = await backlog(slug, room.chat, chat_after)
            except BaseException as exc:
                self.unsubscribe(stream)
                if isinstance(exc, ChatGone):
                    raise NoSuchRoom(slug) from None
                raise
            stream.backlog(frames, complete=complete)
        if not hold:
            self.release(stream)
        return stream

    def _check_cap(self, address: str | None) -> None:
        cap = connection_cap()
        if address is not None and cap is not None and self._per_address.get(address, 0) >= cap:
            raise Refused(429, f"too many open connections from this address (at most {cap})",
                          retry_after_s=RETRY_AFTER_CAP_S)

    def _add(self, room: _Room, stream: Stream) -> None:
        room.streams.add(stream)
        room.idle_since = None
        connection_opened(stream.mode)
        if stream.address is not None:
            self._per_address[stream.address] = self._per_address.get(stream.address, 0) + 1

    def release(self, stream: Stream) -> None:
        """Deliver the room's newest version to a new connection if the resume rule says so, and all after it."""
        newest = self.newest(stream.room)
        # A long poll that kept getting a version it must ignore would spin: it waits instead.
        if newest is not None and needs_snapshot(newest.version, None if stream.version < 0 else stream.version,
                                                 reset_unknown=stream.mode != POLL):
            if stream.version > newest.version:
                stream.version = -1  # a version this room never reached: the stream starts over
        else:
            newest = None
        if isinstance(stream, WrittenStream):
            stream.unhold(newest)  # the state first, then the chat backlog and what queued meanwhile
        elif newest is not None:
            stream.push(newest)

    async def attach_chat_poll(self, slug: str, *, after: int, admission: Admission | None = None) -> ChatPoll:
        """A ``GET .../chat?timeout=`` waiting for messages after ``after``; woken at once if there are some."""
        room = await self._room(slug)
        address = admission.address if admission is not None else None
        self._check_cap(address)
        stream = ChatPoll(slug, after=after, address=address,
                          client_id=admission.client_id if admission else None,
                          token=admission.token if admission else None)
        # Attached before the history is read: a message committed meanwhile arrives either way.
        self._add(room, stream)
        try:
            frames = await page_after(slug, room.chat, after)
        except BaseException as exc:
            self.unsubscribe(stream)
            if isinstance(exc, ChatGone):
                raise NoSuchRoom(slug) from None
            raise
        for frame in frames:
            stream.push_chat(frame)
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        """Forget a connection at once; the room's subscription lingers a little (ROOM_LINGER_S)."""
        stream.detached = True
        self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        room = self._rooms.get(stream.room)
        if room is None or stream not in room.streams:
            return
        room.streams.discard(stream)
        connection_closed(stream.mode)
        if not room.streams:
            room.idle_since = time.monotonic()
        if stream.address is not None:
            left = self._per_address.get(stream.address, 1) - 1
            if left > 0:
                self._per_address[stream.address] = left
            else:
                self._per_address.pop(stream.address, None)

    # -- ending connections (rooms.signals.member_ended, room_access_changed) --------

    def end_member(self, slug: str, client_id: str, code: int) -> int:
        """End every local connection of ``client_id`` in the room (WebSocket close ``code``); how many."""
        ended = endings.end_member(slug, tuple(self._streams_of(slug)), client_id, code)
        for stream in ended:
            self._forget(stream)
        return len(ended)

    async def recheck_room(self, slug: str) -> int:
        """Ask rooms.access again for every local connection of the room; end those it now refuses."""
        forget_room(slug)
        ended = await endings.end_refused(slug, lambda: self._streams_of(slug))
        for stream in ended:
            self._forget(stream)
        return len(ended)

    def _streams_of(self, slug: str) -> set[Stream]:
        room = self._rooms.get(slug)
        return room.streams if room is not None else set()

    def signal_member_ended(self, slug: str, client_id: str, code: int) -> None:
        """From any thread: end the member's connections here and in every process that shares the room."""
        self._from_any_thread(lambda: self.end_member(slug, client_id, code),
                              {"type": "room.member_ended", "room": slug, "client_id": client_id, "code": code})

    def signal_access_changed(self, slug: str) -> None:
        """From any thread: re-check the room's connections here and in every process that shares it."""
        self._from_any_thread(lambda: self._access_changed(slug), {"type": "room.access_changed", "room": slug})

    def _access_changed(self, slug: str) -> None:
        forget_room(slug)  # at once: a connection arriving before the re-check is asked anew
        self._spawn(self.recheck_room(slug))

    def _from_any_thread(self, locally: Any, message: dict[str, Any]) -> None:
        loop = self._loop
        message = {**message, "origin": self._channel}
        if loop is not None and loop.is_running():
            def on_loop() -> None:
                locally()
                self._spawn(self._group_send(message))

            loop.call_soon_threadsafe(on_loop)
        else:
            async_to_sync(self._group_send)(message)

    async def _group_send(self, message: dict[str, Any]) -> None:
        try:
            await get_channel_layer().group_send(_group(message["room"]), message)
        except Exception:
            logger.exception("could not publish %s for %s to the channel layer", message["type"], message["room"])

    def _on_layer_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "room.state":
            self._deliver(Snapshot.from_message(message))
        elif kind == "room.chat":
            self._deliver_chat(ChatFrame.from_message(message))  # this process's own: dropped by id
        elif message.get("origin") is not None and message.get("origin") == self._channel:
            return  # this process acted on it already
        elif kind == "room.chat_delete":
            self._chat_deleted(message["room"], message["id"])
        elif kind == "room.member_ended":
            self.end_member(message["room"], message["client_id"], message["code"])
        elif kind == "room.access_changed":
            self._access_changed(message["room"])

    async def ensure_room(self, slug: str) -> None:
        """Raise NoSuchRoom unless the room exists; subscribes this process to it."""
        await self._room(slug)

    async def _room(self, slug: str) -> _Room:
        if not _SLUG.match(slug):
            raise NoSuchRoom(slug)
        await self._start()
        room = self._rooms.get(slug)
        if room is None:
            room = self._rooms[slug] = _Room(asyncio.ensure_future(self._join(slug)))
        try:
            await asyncio.shield(room.ready)
        except Exception:
            if self._rooms.get(slug) is room and not room.streams:
                del self._rooms[slug]
            raise
        return room

    async def current(self, slug: str) -> Snapshot:
        """The room's newest snapshot as this process knows it, subscribing to the room if needed.

        For short polling: the subscription lingers ROOM_LINGER_S after the last poll, so a
        room polled every second is read from memory, not from the database.
        """
        room = await self._room(slug)
        if not room.streams:
            room.idle_since = time.monotonic()
        assert room.newest is not None  # _join delivered the state it read
        return room.newest

    def newest(self, slug: str) -> Snapshot | None:
        room = self._rooms.get(slug)
        return room.newest if room is not None else None

    def viewer_count(self) -> int:
        return sum(len(room.streams) for room in self._rooms.values())

    def stats(self) -> dict[str, Any]:
        """Open connections by mode and what the streams did (sends, daphne fast-path writes, errors)."""
        by_mode: dict[str, int] = {}
        for room in self._rooms.values():
            for stream in room.streams:
                by_mode[stream.mode] = by_mode.get(stream.mode, 0) + 1
        return {"viewers": sum(by_mode.values()), "by_mode": by_mode, "counts": dict(counts)}

    def send_to_room(self, slug: str, messages: dict[str, dict[str, Any]]) -> None:
        """Queue one pre-encoded ASGI message (per mode in ``messages``) on every connection of the room, in order."""
        room = self._rooms.get(slug)
        for stream in tuple(room.streams) if room is not None else ():
            message = messages.get(stream.mode)
            if message is not None and hasattr(stream, "send_message"):
                stream.send_message(message)

    # -- publishing ----------------------------------------------------------------

    def publish_committed(self, state: RoomState) -> None:
        """Called once per committed version, from whatever thread committed it."""
        snapshot = Snapshot.from_state(state)
        loop = self._loop
        if loop is not None and loop.is_running():
            # Deliver locally at once, without the round trip through the layer; the
            # copy that comes back through the layer is dropped by version.
            loop.call_soon_threadsafe(self._publish_on_loop, snapshot)
        else:
            async_to_sync(self._send_to_layer)(snapshot)

    def _publish_on_loop(self, snapshot: Snapshot) -> None:
        self._deliver(snapshot)
        self._spawn(self._send_to_layer(snapshot))

    async def _send_to_layer(self, snapshot: Snapshot) -> None:
        try:
            await get_channel_layer().group_send(_group(snapshot.room), snapshot.to_message())
        except Exception:
            # The other processes catch up from the database (RECONCILE_INTERVAL_S).
            logger.exception("could not publish %r to the channel layer", snapshot)

    def _deliver(self, snapshot: Snapshot) -> None:
        room = self._rooms.get(snapshot.room)
        if room is None or (room.newest is not None and room.newest.version >= snapshot.version):
            return
        room.newest = snapshot
        started = time.perf_counter()
        for stream in tuple(room.streams):
            stream.push(snapshot)
        fanout_observed(time.perf_counter() - started)

    # -- chat: a log ---------------------------------------------------------------------

    def publish_chat(self, slug: str, message: dict[str, Any]) -> None:
        """Called once per committed chat message, from whatever thread committed it."""
        frame = ChatFrame.from_dict(slug, message)
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._chat_on_loop, frame)
        else:
            async_to_sync(self._group_send)({**frame.to_message(), "origin": None})

    def _chat_on_loop(self, frame: ChatFrame) -> None:
        self._deliver_chat(frame)
        self._spawn(self._group_send({**frame.to_message(), "origin": self._channel}))

    def publish_chat_delete(self, slug: str, message_id: int) -> None:
        """From any thread: every page of the room, in every process, drops message ``message_id``."""
        self._from_any_thread(lambda: self._chat_deleted(slug, message_id),
                              {"type": "room.chat_delete", "room": slug, "id": message_id})

    def _chat_deleted(self, slug: str, message_id: int) -> None:
        room = self._rooms.get(slug)
        if room is None:
            return
        room.chat.delete(message_id)
        socket, event = chat_delete_frames(message_id)
        self.send_to_room(slug, {"ws": socket.ws_message, "sse": event.sse_message})

    def _deliver_chat(self, frame: ChatFrame) -> None:
        room = self._rooms.get(frame.room)
        if room is None:
            return
        self._hand_out(room, room.chat.arrive(frame))
        if room.chat.needs_fill():
            self._spawn(self._fill_chat(frame.room, room, wait=True))

    def _hand_out(self, room: _Room, frames: list[ChatFrame]) -> None:
        for frame in frames:
            for stream in tuple(room.streams):
                stream.push_chat(frame)

    async def _fill_chat(self, slug: str, room: _Room, *, wait: bool) -> None:
        """Deliver from the database what the layer did not bring (in id order); deleted ids are skipped."""
        try:
            gap = await read_gap(slug, room.chat, wait=wait)
            if gap is not None and self._rooms.get(slug) is room:
                seq, messages = gap
                self._hand_out(room, room.chat.filled(seq, messages, slug))
        except Exception:
            logger.exception("could not fill the chat of %s from the database", slug)
        finally:
            room.chat.filling = False
            if self._rooms.get(slug) is room and room.chat.needs_fill():
                self._spawn(self._fill_chat(slug, room, wait=True))

    # -- the process's subscriptions -------------------------------------------------

    async def _start(self) -> None:
        if self._started is None:
            self._loop = asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self._open_channel())
        await asyncio.shield(self._started)

    async def _open_channel(self) -> None:
        self._channel = await get_channel_layer().new_channel("hub.")
        for job in (self._receive_forever(), self._reconcile_forever(), self._heartbeat_forever()):
            self._spawn(job)

    async def _join(self, slug: str) -> None:
        # Subscribe first, then read: a version committed in between arrives either way.
        await get_channel_layer().group_add(_group(slug), self._channel)
        row = await _read_state(slug)
        if row is None:
            await get_channel_layer().group_discard(_group(slug), self._channel)
            raise NoSuchRoom(slug)
        data, chat_seq = row
        self._deliver(Snapshot.from_dict(data))
        room = self._rooms.get(slug)
        if room is not None:
            # Messages up to the database's position are history, not this process's to deliver.
            self._hand_out(room, room.chat.start_at(chat_seq))

    async def _receive_forever(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(self._channel)
                # Never mutate ``message``: channels_redis hands the same dict to every receiver.
                self._on_layer_message(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("hub receive failed; retrying")
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL_S)
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("hub reconcile failed; retrying")

    async def _reconcile(self) -> None:
        now = time.monotonic()
        layer = get_channel_layer()
        for slug, room in list(self._rooms.items()):
            if room.idle_since is not None and now - room.idle_since > ROOM_LINGER_S:
                del self._rooms[slug]
                await layer.group_discard(_group(slug), self._channel)
            elif room.ready.done() and room.ready.exception() is None:
                # Also renews the membership (the in-memory layer expires groups).
                await layer.group_add(_group(slug), self._channel)
        known = {slug: room.newest.version for slug, room in self._rooms.items() if room.newest is not None}
        for data in await _read_newer(known):
            self._deliver(Snapshot.from_dict(data))
        # Chat too: a message whose layer copy was lost is read from the database.
        ready = {slug: room for slug, room in self._rooms.items() if room.streams and room.ready.done()}
        for slug, seq in (await read_chat_seqs(list(ready))).items():
            room = ready[slug]
            if seq > room.chat.chat_id and not room.chat.filling and self._rooms.get(slug) is room:
                room.chat.filling = True
                self._spawn(self._fill_chat(slug, room, wait=False))

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            for room in list(self._rooms.values()):
                for stream in list(room.streams):
                    stream.heartbeat()

    def _spawn(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _group(slug: str) -> str:
    return f"room.{slug}"


@database_sync_to_async
def _read_state(slug: str) -> tuple[dict[str, Any], int] | None:
    return Room.objects.filter(slug=slug).values_list("state", "chat_seq").first()


@database_sync_to_async
def _read_newer(known: dict[str, int]) -> list[dict[str, Any]]:
    if not known:
        return []
    rows = Room.objects.filter(slug__in=list(known)).values_list("slug", "version")
    stale = [slug for slug, version in rows if version > known[slug]]
    return list(Room.objects.filter(slug__in=stale).values_list("state", flat=True)) if stale else []


hub = Hub()


def on_room_state_changed(sender: Any, state: RoomState, **kwargs: Any) -> None:
    """The receiver of rooms.signals.room_state_changed (connected in TransportsConfig.ready)."""
    try:
        hub.publish_committed(state)
    except Exception:
        # The command is committed whatever happens here; viewers catch up by reconciling.
        logger.exception("could not publish version %s of %s", state.version, state.room)


def on_chat_message_posted(sender: Any, room: str, message: dict[str, Any], **kwargs: Any) -> None:
    """The receiver of rooms.signals.chat_message_posted: the message goes to every viewer of the room."""
    try:
        hub.publish_chat(room, message)
    except Exception:
        # The message is committed; viewers catch up from the history (the reconciler, GET .../chat).
        logger.exception("could not publish chat message %s of %s", message.get("id"), room)


def on_chat_message_deleted(sender: Any, room: str, message_id: int, **kwargs: Any) -> None:
    """The receiver of rooms.signals.chat_message_deleted: every page of the room drops the message."""
    try:
        hub.publish_chat_delete(room, message_id)
    except Exception:
        logger.exception("could not publish the deletion of chat message %s of %s", message_id, room)


def on_member_ended(sender: Any, room: str, client_id: str, code: int = 4403, **kwargs: Any) -> None:
    """The receiver of rooms.signals.member_ended: that member's connections end at once."""
    try:
        hub.signal_member_ended(room, client_id, code)
    except Exception:
        logger.exception("could not end the connections of %s in %s", client_id, room)


def on_room_access_changed(sender: Any, room: str, **kwargs: Any) -> None:
    """The receiver of rooms.signals.room_access_changed: every connection of the room is checked again."""
    try:
        hub.signal_access_changed(room)
    except Exception:
        logger.exception("could not re-check the connections of %s", room)
