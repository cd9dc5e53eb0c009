"""make serve's stack for the fault benchmarks, and a lean reconnecting asyncio viewer (SSE or WebSocket).

The stack is ``python -m vsync.deploy.serve`` on free ports with its data in a fresh
folder, address limits off (every viewer comes from 127.0.0.1) and nginx's plain-HTTP
loopback listener on (VSYNC_NGINX_PLAIN_PORT): viewers go through nginx to the workers
without a TLS handshake per reconnect in the client, which shares the machine.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from vsync.launcher import free_port

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.compile(rb'"version": ?(\d+)')
START_TIMEOUT_S = 240.0
# The page's backoff (static/vsync/transports.js): doubles from 250 ms up to 8 s, equal jitter.
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0


def backoff_s(attempt: int) -> float:
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt)
    return ceiling / 2 + random.random() * ceiling / 2


@dataclass
class ServeStack:
    """One make serve, started and stopped by this process."""

    workers: int = 2
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vsync-bench-")))
    port: int = field(default_factory=free_port)
    plain_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeStack:
        self.data_dir.chmod(0o755)  # nginx's and PostgreSQL's users enter it
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "TLS_CERT", "TLS_KEY", "HOST")}
        env.update(VSYNC_DATA_DIR=str(self.data_dir), PORT=str(self.port), WORKERS=str(self.workers),
                   VSYNC_NGINX_PLAIN_PORT=str(self.plain_port), VSYNC_ADDRESS_LIMITS="off",
                   VSYNC_MAX_CONNECTIONS_PER_ADDRESS="20000", VSYNC_NGINX_REQUESTS_PER_S="20000",
                   LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        out = open(self.data_dir / "serve.out", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "vsync.deploy.serve"], cwd=ROOT, env=env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while "vsync: https://" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"make serve did not start:\n{output}")
            time.sleep(0.5)
        return self

    def output(self) -> str:
        path = self.data_dir / "serve.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_list(self) -> list[dict[str, Any]]:
        listing: list[dict[str, Any]] = json.loads((self.data_dir / "serve" / "workers.json").read_text())
        return listing

    def nginx_pids(self) -> list[int]:
        """nginx's master (its pid file) and its worker processes."""
        master = psutil.Process(int((self.data_dir / "serve" / "nginx" / "nginx.pid").read_text()))
        return [master.pid] + [child.pid for child in master.children()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                port: int | None = None) -> tuple[int, Any]:
        """Plain HTTP through nginx's loopback listener (or straight to a worker's ``port``)."""
        connection = http.client.HTTPConnection("127.0.0.1", port or self.plain_port, timeout=30)
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={"Content-Type": "application/json", "Host": "localhost",
                                        "X-Forwarded-Proto": "https"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def create_room(self, name: str) -> str:
        status, body = self.request("POST", "/api/rooms", {"name": name})
        assert status == 201, body
        return str(body["room"])

    def command(self, slug: str, position: float) -> int:
        status, body = self.request("POST", f"/api/rooms/{slug}/commands", {
            "type": "seek", "client_id": f"bench-{position}", "client_ms": time.time() * 1000,
            "position": position})
        assert status == 200, body
        return int(body["state"]["version"])


def viewer_request(transport: str, slug: str, since: int | None) -> bytes:
    if transport == "sse":
        resume = f"?last_event_id={since}" if since is not None else ""
        return f"GET /api/rooms/{slug}/events{resume} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    return (f"GET /ws/rooms/{slug} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


@dataclass
class Viewer:
    """Reconnects with the page's backoff and jitter; ``versions`` maps each version seen to when (monotonic)."""

    transport: str
    slug: str
    port: int
    versions: dict[int, float] = field(default_factory=dict)
    connects: int = 0
    failures: int = 0
    latest: int | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                await self._one_connection(stop)
                attempt = 0
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                self.failures += 1
            self.connected.clear()
            if stop.is_set():
                return
            await asyncio.sleep(backoff_s(attempt))
            attempt += 1

    async def _one_connection(self, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(viewer_request(self.transport, self.slug, self.latest))
            head = await reader.readuntil(b"\r\n\r\n")
            if not (head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.1 101")):
                raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            self.connects += 1
            self.connected.set()
            buffer = b""
            while not stop.is_set():
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed by the server")
                now = time.monotonic()
                buffer += data
                if self.transport == "ws":
                    messages, buffer = _ws_frames(buffer, writer)
                else:  # SSE: whole events only (one may span reads)
                    cut = buffer.rfind(b"\n\n") + 2
                    messages, buffer = ([buffer[:cut]], buffer[cut:]) if cut >= 2 else ([], buffer)
                for message in messages:
                    for match in _VERSION.finditer(message):
                        version = int(match.group(1))
                        self.versions.setdefault(version, now)
                        self.latest = max(self.latest or 0, version)
        finally:
            writer.close()


def _ws_frames(buffer: bytes, writer: asyncio.StreamWriter) -> tuple[list[bytes], bytes]:
    """Complete text frames out of ``buffer`` (the rest stays); pings answered with their payload."""
    messages = []
    while len(buffer) >= 2:
        opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < start + size:
            break
        payload, buffer = buffer[start:start + size], buffer[start + size:]
        if opcode == 0x1:
            messages.append(payload)
        elif opcode == 0x9:  # masked with a zero key: the payload as is
            writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        elif opcode == 0x8:
            raise ConnectionError("closed by the server")
    return messages, buffer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.999999) - 1))] if ordered else -1.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0
