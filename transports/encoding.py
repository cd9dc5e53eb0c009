"""Encode-once: one room version (or chat message) becomes every transport's wire frame once per process.

SSE ids encode both positions a stream resumes from: ``<version>.<chat_id>``, the
room version and the chat message id that this stream had delivered when it wrote
the event. A stream that has delivered no chat position yet (the room has no message)
writes the bare ``<version>``, as v1 did. transports.resume reads both forms.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from rooms.state import RoomState
from transports.asgi_http import NOSNIFF


class Snapshot:
    """One version of one room, with the bytes each transport writes already built.

    The ASGI message dicts are shared by every connection that receives this version:
    servers only read them, and nothing here may mutate them.
    """


    def __init__(self, *, room: str, version: int, json_text: str) -> None:
        self.room = room
        self.version = version
        self.json = json_text
        self.body = json_text.encode()
        sse = b"id: %d\nevent: state\ndata: %s\n\n" % (version, self.body)
        self.sse_message: dict[str, Any] = {"type": "http.response.body", "more_body": True, "body": sse}
        self.ws_message: dict[str, Any] = {"type": "websocket.send",
                                           "text": '{"type":"state","state":' + json_text + "}"}
        # The same messages as bytes on the wire, for servers that let the hub write them
        # itself (transports.fastwrite): one unmasked text frame, one HTTP/1.1 chunk.
        self.ws_frame = _text_frame(self.ws_message["text"].encode())
        self.sse_chunk = b"%x\r\n%s\r\n" % (len(sse), sse)
        self.poll_start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body)),
            (b"cache-control", b"no-cache"), NOSNIFF, (b"etag", b'"%d"' % version)]}
        self.poll_body = {"type": "http.response.body", "body": self.body}
        self._sse_by_chat: dict[int, SseFrame] = {}

    def sse_for(self, chat_id: int) -> Snapshot | SseFrame:
        """This version's SSE event with the id ``<version>.<chat_id>`` (bare when ``chat_id`` is 0).

        Built once per chat position: the streams of a room are nearly all at the same one.
        """
        if chat_id <= 0:
            return self
        frame = self._sse_by_chat.get(chat_id)
        if frame is None:
            if len(self._sse_by_chat) >= _FRAME_CACHE:
                self._sse_by_chat.clear()
            frame = self._sse_by_chat[chat_id] = SseFrame(b"%d.%d" % (self.version, chat_id), b"state", self.body)
        return frame

    @classmethod
    def from_state(cls, state: RoomState) -> Snapshot:
        return cls.from_dict(state.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(room=data["room"], version=data["version"], json_text=json.dumps(data, allow_nan=False))

    @cached_property
    def state(self) -> dict[str, Any]:
        """The decoded state, for the few places that embed it in a larger message (acks)."""
        state: dict[str, Any] = json.loads(self.json)
        return state

    def to_message(self) -> dict[str, Any]:
        """The channel-layer message: the JSON text travels as is, so no process re-encodes it."""
        return {"type": "room.state", "room": self.room, "version": self.version, "json": self.json}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Snapshot:
        return cls(room=message["room"], version=message["version"], json_text=message["json"])

    def __repr__(self) -> str:
        return f"<Snapshot {self.room} v{self.version}>"


# How many differently numbered SSE frames one snapshot or message keeps: streams of one
# room differ only while a slow one catches up.
_FRAME_CACHE = 8


class SseFrame:
    """One SSE event as an ASGI message and as an HTTP/1.1 chunk (what transports.fastwrite writes)."""

    __slots__ = ("sse_chunk", "sse_message")

    def __init__(self, event_id: bytes | None, event: bytes, data: bytes) -> None:
        head = b"id: %s\n" % event_id if event_id is not None else b""
        body = b"%sevent: %s\ndata: %s\n\n" % (head, event, data)
        self.sse_message: dict[str, Any] = {"type": "http.response.body", "more_body": True, "body": body}
        self.sse_chunk = b"%x\r\n%s\r\n" % (len(body), body)


class SocketFrame:
    """One WebSocket text message as an ASGI message and as an unmasked frame."""

    __slots__ = ("ws_frame", "ws_message")

    def __init__(self, text: str) -> None:
        self.ws_message: dict[str, Any] = {"type": "websocket.send", "text": text}
        self.ws_frame = _text_frame(text.encode())


class ChatFrame:
    """One chat message of one room, encoded once: the WebSocket frame, and SSE events by stream version."""

    __slots__ = ("_sse_by_version", "id", "json", "room", "socket")

    def __init__(self, *, room: str, message_id: int, json_text: str) -> None:
        self.room, self.id, self.json = room, message_id, json_text
        self.socket = SocketFrame('{"type":"chat","message":' + json_text + "}")
        self._sse_by_version: dict[int, SseFrame] = {}

    @classmethod
    def from_dict(cls, room: str, message: dict[str, Any]) -> ChatFrame:
        return cls(room=room, message_id=message["id"], json_text=json.dumps(message, allow_nan=False))

    def sse_for(self, version: int) -> SseFrame:
        """``event: chat`` with the id ``<version>.<this id>``: the version the stream had delivered."""
        frame = self._sse_by_version.get(version)
        if frame is None:
            if len(self._sse_by_version) >= _FRAME_CACHE:
                self._sse_by_version.clear()
            frame = self._sse_by_version[version] = SseFrame(b"%d.%d" % (max(version, 0), self.id), b"chat",
                                                             self.json.encode())
        return frame

    def to_message(self) -> dict[str, Any]:
        """The channel-layer message: the JSON travels as is, so no process re-encodes it."""
        return {"type": "room.chat", "room": self.room, "id": self.id, "json": self.json}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ChatFrame:
        return cls(room=message["room"], message_id=message["id"], json_text=message["json"])

    def __repr__(self) -> str:
        return f"<ChatFrame {self.room} #{self.id}>"


def chat_delete_frames(message_id: int) -> tuple[SocketFrame, SseFrame]:
    """What every page gets when a moderator deletes message ``message_id`` (no SSE id: no position moves)."""
    return (SocketFrame(f'{{"type":"chat_delete","id":{message_id}}}'),
            SseFrame(None, b"chat-delete", b'{"id":%d}' % message_id))


def chat_reset_frames(after: int) -> tuple[SocketFrame, SseFrame]:
    """A stream that fell too far behind: re-read ``GET .../chat?after=<after>``."""
    return (SocketFrame(f'{{"type":"chat_reset","after":{after}}}'),
            SseFrame(None, b"chat-reset", b'{"after":%d}' % after))


def _text_frame(payload: bytes) -> bytes:
    """A final, unmasked WebSocket text frame (RFC 6455 5.2): what a server sends."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + payload
