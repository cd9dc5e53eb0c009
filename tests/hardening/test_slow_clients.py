"""Slow clients cannot hold connections: header and body read deadlines under daphne (runserver).

The server here runs with VSYNC_HEADER_TIMEOUT_S=2 and a body rate of 1 KiB/s judged over
2 s windows (tests/hardening/conftest.py), so every socket below must be closed within seconds.
"""

from __future__ import annotations

import select
import socket
import time

import httpx

from tests.support.servers import LiveServer

SOCKETS = 20
# The deadline is 2 s; a closed socket is noticed within the next trickle.
CLOSED_WITHIN_S = 8.0


def _trickle_until_closed(sockets: list[socket.socket], payload: bytes, interval: float = 0.5) -> float:
    """Send one byte of ``payload`` per socket every ``interval``; seconds until the server closed them all."""
    started = time.monotonic()
    open_sockets = list(sockets)
    position = 0
    while open_sockets and time.monotonic() - started < CLOSED_WITHIN_S * 2:
        for sock in list(open_sockets):
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable and not sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    raise ConnectionResetError
                if readable:
                    sock.recv(4096)
                sock.send(payload[position % len(payload):position % len(payload) + 1])
            except OSError:
                open_sockets.remove(sock)
        position += 1
        time.sleep(interval)
    assert not open_sockets, f"{len(open_sockets)} of {len(sockets)} still open"
    return time.monotonic() - started


def _connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def test_slow_headers_are_cut_off(live_server_process: LiveServer) -> None:
    port = live_server_process.port
    sockets = [_connect(port, b"GET /api/time HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(SOCKETS)]
    elapsed = _trickle_until_closed(sockets, b"X-Slow: " + b"a" * 1000)
    assert elapsed < CLOSED_WITHIN_S


def test_a_slow_request_line_is_cut_off(live_server_process: LiveServer) -> None:
    sockets = [_connect(live_server_process.port) for _ in range(SOCKETS)]
    elapsed = _trickle_until_closed(sockets, b"GET /" + b"a" * 1000)
    assert elapsed < CLOSED_WITHIN_S


def test_slow_bodies_are_cut_off(live_server_process: LiveServer) -> None:
    head = (b"POST /api/rooms/demo/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n")
    sockets = [_connect(live_server_process.port, head) for _ in range(SOCKETS)]
    elapsed = _trickle_until_closed(sockets, b" " * 100)
    assert elapsed < CLOSED_WITHIN_S


def test_a_silent_connection_is_closed(live_server_process: LiveServer) -> None:
    sock = _connect(live_server_process.port)
    sock.settimeout(CLOSED_WITHIN_S)
    started = time.monotonic()
    assert sock.recv(1) == b""
    assert time.monotonic() - started < CLOSED_WITHIN_S


def test_an_event_stream_outlives_the_deadlines(live_server_process: LiveServer) -> None:
    with httpx.stream("GET", f"{live_server_process.url}/api/rooms/demo/events", timeout=10) as response:
        assert response.status_code == 200
        started = time.monotonic()
        lines = response.iter_lines()
        while time.monotonic() - started < 5:  # well past the 2 s header deadline
            next(lines)
    assert time.monotonic() - started >= 5


def test_keep_alive_serves_several_requests(live_server_process: LiveServer) -> None:
    with httpx.Client(base_url=live_server_process.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/api/time").status_code == 200
            time.sleep(0.5)
