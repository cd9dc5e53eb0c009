"""The wire bytes a version is encoded into once, for servers that let the hub write them."""

from __future__ import annotations

import json

import pytest
from websockets.frames import Frame, Opcode

from transports.encoding import Snapshot


def snapshot(padding: int) -> Snapshot:
    return Snapshot(room="demo", version=7, json_text=json.dumps({"version": 7, "padding": "x" * padding}))


@pytest.mark.parametrize("padding", [0, 80, 200, 70_000])  # 7-bit, 16-bit and 64-bit frame lengths
def test_ws_frame_is_the_frame_a_websocket_server_sends(padding):
    state = snapshot(padding)
    assert state.ws_frame == Frame(Opcode.TEXT, state.ws_message["text"].encode()).serialize(mask=False)


def test_sse_chunk_is_the_event_in_one_http_chunk():
    state = snapshot(10)
    body = state.sse_message["body"]
    size, rest = state.sse_chunk.split(b"\r\n", 1)
    assert int(size, 16) == len(body)
    assert rest == body + b"\r\n"
