"""When the hub writes daphne's frames itself, and when it leaves them to the ordinary send."""

from __future__ import annotations

import asyncio
import socket
from functools import partial

import httpx
import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from tests.support.clients import create_room, seek, viewer
from tests.support.twisted_tcp import TwistedTcp
from transports import fastwrite
from transports.encoding import Snapshot


def daphne_socket(transport: object) -> tuple[Server, WebSocketProtocol]:
    server = object.__new__(Server)
    protocol = object.__new__(WebSocketProtocol)
    protocol.state, protocol.send_state = WebSocketProtocol.STATE_OPEN, WebSocketProtocol.SEND_STATE_GROUND
    protocol.transport = transport
    server.connections = {protocol: {}}
    return server, protocol


def test_other_servers_sends_are_left_alone():
    async def send(message: dict) -> None:
        pass

    assert fastwrite.writer_for(send, "ws") is None
    assert fastwrite.writer_for(partial(send), "sse") is None


def test_a_daphne_socket_gets_a_writer_only_when_twisted_looks_as_expected():
    left, right = socket.socketpair()
    try:
        server, protocol = daphne_socket(TwistedTcp(left))
        assert fastwrite.writer_for(partial(server.handle_reply, protocol), "ws") is not None
        assert fastwrite.writer_for(partial(server.handle_reply, protocol), "sse") is None  # not an HTTP request

        class Unfamiliar:  # a transport without Twisted's buffers (TLS, or a future release)
            socket = left
            connected, disconnecting = True, False

        server, protocol = daphne_socket(Unfamiliar())
        assert fastwrite.writer_for(partial(server.handle_reply, protocol), "ws") is None
    finally:
        left.close()
        right.close()


def test_a_closed_connection_is_left_to_the_ordinary_send():
    left, right = socket.socketpair()
    try:
        server, protocol = daphne_socket(TwistedTcp(left))
        writer = fastwrite.writer_for(partial(server.handle_reply, protocol), "ws")
        server.connections[protocol]["disconnected"] = True
        assert writer.write(Snapshot(room="demo", version=2, json_text='{"version": 2}')) == fastwrite.UNAVAILABLE
        right.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing was written
            right.recv(1)
    finally:
        left.close()
        right.close()


def hub_counts(server) -> dict[str, int]:
    return httpx.get(f"{server.url}/_hub/stats").json()["counts"]


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_real_daphne_takes_the_fast_path(push_server, transport):
    # The fast path reads daphne's, autobahn's and Twisted's attributes: if an installed
    # release lacks them the hub falls back to the ordinary send, and this fails.
    room = create_room(push_server.url, f"fast path {transport}")["room"]
    before = hub_counts(push_server)

    async def scenario() -> None:
        async with viewer(transport, push_server.url, room) as watcher:
            assert (await watcher.next_state(timeout=5))["version"] == 1
            changed = await asyncio.to_thread(seek, push_server.url, room, 4.0)
            assert await watcher.next_state(timeout=5) == changed

    asyncio.run(scenario())
    after = hub_counts(push_server)
    assert after.get(f"fast.{transport}", 0) - before.get(f"fast.{transport}", 0) >= 1  # the seek, at least
    assert after.get("send_errors", 0) == before.get("send_errors", 0)
    assert "fast path unavailable" not in push_server.log_path.read_text()


def test_a_request_whose_client_left_is_neither_written_nor_waited_for():
    from daphne.http_protocol import WebRequest

    left, right = socket.socketpair()
    try:
        server = object.__new__(Server)
        request = object.__new__(WebRequest)
        request.finished, request._disconnected, request.startedWriting = False, False, True
        request.method, request.chunked, request.sentLength = b"GET", True, 0
        request.channel = type("Channel", (), {"transport": TwistedTcp(left)})()
        server.connections = {request: {}}
        writer = fastwrite.writer_for(partial(server.handle_reply, request), "sse")
        assert writer is not None
        state = Snapshot(room="demo", version=2, json_text='{"version": 2}')
        assert writer.write(state) == fastwrite.WRITTEN
        assert right.recv(1 << 16) == state.sse_chunk
        request._disconnected, request.channel = True, None  # what twisted.web does when the client goes
        assert writer.write(state) == fastwrite.UNAVAILABLE
        assert not writer.backed_up()
    finally:
        left.close()
        right.close()
