"""A request body costs the server neither memory nor disk beyond its route's limit (daphne via runserver).

RSS is read from outside the server process (psutil), as an operator would see it.
"""

from __future__ import annotations

import socket
import threading
import time

import psutil
import pytest

from tests.support.servers import LiveServer

MIB = 1024 * 1024
BODY_MIB = 100
# The guard's promise: a 100 MiB request moves the server's RSS by less than this.
MAX_GROWTH_MIB = 64


def _multipart_post(port: int, path: str, size: int) -> bytes:
    """Send a multipart POST of ``size`` bytes of file, as fast as the server reads; the status line."""
    boundary = "vsyncboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.webm\"\r\n"
            "Content-Type: video/webm\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + size + len(tail)
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    block = b"\x1a\x45\xdf\xa3" + b"x" * (MIB - 4)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(request + head)
            for _ in range(size // MIB):
                sock.sendall(block)
            sock.sendall(tail)
        except OSError:
            pass  # refused early: the server closed while we were still sending
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0]
        except OSError:
            return b"(connection reset)"


def _rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MIB


@pytest.mark.parametrize("path", ["/api/rooms/no-such-room/media", "/", "/api/rooms/demo/commands"])
def test_a_100_mib_post_costs_the_server_under_64_mib(live_server_process: LiveServer, path: str) -> None:
    pid = live_server_process.pid
    assert pid is not None
    _multipart_post(live_server_process.port, "/api/time", 1)  # warm up the application
    before = _rss_mib(pid)
    peak = before
    answer: list[bytes] = []
    sender = threading.Thread(target=lambda: answer.append(_multipart_post(live_server_process.port, path,
                                                                           BODY_MIB * MIB)))
    sender.start()
    settle_until = None
    while sender.is_alive() or time.monotonic() < (settle_until or 0):
        if not sender.is_alive() and settle_until is None:
            settle_until = time.monotonic() + 0.5  # the application may still be reading
        peak = max(peak, _rss_mib(pid))
        time.sleep(0.02)
    status = answer[0]
    print(f"{path}: RSS {before:.0f} -> peak {peak:.0f} MiB, answer {status!r}")
    assert peak - before < MAX_GROWTH_MIB, f"{path}: {before:.0f} -> {peak:.0f} MiB ({status!r})"
    assert status.split(b" ")[1:2] in ([b"404"], [b"413"], [b"405"]) or status == b"(connection reset)"


def test_an_oversize_body_is_refused_from_its_headers(live_server_process: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live_server_process.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 104857600\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"100 Continue" not in answer
    assert b'"error"' in answer


def test_a_chunked_body_is_refused_once_over_its_limit(live_server_process: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live_server_process.port), timeout=10) as sock:
        sock.sendall(b"POST /api/rooms/demo/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/json\r\n\r\n")
        chunk = b"x" * 8192
        try:
            for _ in range(4):  # 32 KiB: over the API's 16 KiB
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer


def test_a_small_body_still_reaches_the_application(live_server_process: LiveServer) -> None:
    import httpx

    body = {"type": "seek", "client_id": "guard", "client_ms": time.time() * 1000, "position": 1.0}
    response = httpx.post(f"{live_server_process.url}/api/rooms/demo/commands", json=body, timeout=10)
    assert response.status_code == 200, response.text
