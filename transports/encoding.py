"""Encode-once: one room version becomes every transport's wire frame exactly once per process."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from rooms.state import RoomState


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
        self.sse_message = {"type": "http.response.body", "more_body": True,
                            "body": b"id: %d\nevent: state\ndata: %s\n\n" % (version, self.body)}
        self.ws_message = {"type": "websocket.send", "text": '{"type":"state","state":' + json_text + "}"}
        # The same messages as bytes on the wire, for servers that let the hub write them
        # itself (transports.fastwrite): one unmasked text frame, one HTTP/1.1 chunk.
        self.ws_frame = _text_frame(self.ws_message["text"].encode())
        sse = self.sse_message["body"]
        self.sse_chunk = b"%x\r\n%s\r\n" % (len(sse), sse)
        self.poll_start = {"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body)),
            (b"cache-control", b"no-cache"), (b"etag", b'"%d"' % version)]}
        self.poll_body = {"type": "http.response.body", "body": self.body}

    @classmethod
    def from_state(cls, state: RoomState) -> Snapshot:
        return cls.from_dict(state.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(room=data["room"], version=data["version"], json_text=json.dumps(data, allow_nan=False))

    @cached_property
    def state(self) -> dict[str, Any]:
        """The decoded state, for the few places that embed it in a larger message (acks)."""
        return json.loads(self.json)

    def to_message(self) -> dict[str, Any]:
        """The channel-layer message: the JSON text travels as is, so no process re-encodes it."""
        return {"type": "room.state", "room": self.room, "version": self.version, "json": self.json}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Snapshot:
        return cls(room=message["room"], version=message["version"], json_text=message["json"])

    def __repr__(self) -> str:
        return f"<Snapshot {self.room} v{self.version}>"


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
