"""make serve's stack for real: nginx (TLS, HTTP/2) in front of 2 uvicorn workers, Redis and PostgreSQL.

One stack for the module, started by ``python -m vsync.deploy.serve`` on free ports with
its data in a fresh folder, and stopped with SIGTERM at the end (which must stop
everything it started). Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from vsync.launcher import ROOT, free_port

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]

START_TIMEOUT_S = 240.0
UPLOAD_LIMIT = 8 * 1024 * 1024
METRICS_TOKEN = "metrics-token-for-the-test"


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def workers(self) -> list[dict[str, Any]]:
        listing: list[dict[str, Any]] = json.loads((self.data_dir / "serve" / "workers.json").read_text())
        return listing

    def output(self) -> str:
        return (self.data_dir / "serve.out").read_text(errors="replace")


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, verify=False, timeout=15.0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
        return stat.read().split()[2] != "Z"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Not pytest's tmp_path: nginx's and PostgreSQL's own users must be able to enter it.
    data_dir = Path(tempfile.mkdtemp(prefix="vsync-serve-"))
    data_dir.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "TLS_CERT", "TLS_KEY", "HOST")}
    env.update(VSYNC_DATA_DIR=str(data_dir), PORT=str(port), WORKERS="2", METRICS_TOKEN=METRICS_TOKEN,
               VSYNC_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    out = open(data_dir / "serve.out", "wb")
    process = subprocess.Popen([sys.executable, "-m", "vsync.deploy.serve"], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    running = Stack(process, port, data_dir)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "vsync: https://" not in running.output():
            assert process.poll() is None, f"make serve exited:\n{running.output()}"
            assert time.monotonic() < deadline, f"make serve did not start:\n{running.output()}"
            time.sleep(0.5)
        yield running
    finally:
        try:
            stop_and_check(running)
        finally:
            out.close()
            shutil.rmtree(data_dir, ignore_errors=True)


def stop_and_check(running: Stack) -> None:
    """SIGTERM stops nginx, the workers, Redis and PostgreSQL; nothing is left behind."""
    if running.process.poll() is not None:
        return
    pids = [int(w["pid"]) for w in running.workers()] if (running.data_dir / "serve" / "workers.json").exists() \
        else []
    nginx_pid_file = running.data_dir / "serve" / "nginx" / "nginx.pid"
    if nginx_pid_file.exists():
        pids.append(int(nginx_pid_file.read_text()))
    running.process.send_signal(signal.SIGTERM)
    try:
        running.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(running.process.pid, signal.SIGKILL)
        raise
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if alive(pid)], "processes outlived make serve"
    assert not (running.data_dir / "postgres" / "pgdata" / "postmaster.pid").exists(), "PostgreSQL still runs"


def now_ms() -> float:
    return time.time() * 1000.0


async def create_room(http: httpx.AsyncClient, stack: Stack, name: str) -> str:
    response = await http.post(f"{stack.url}/api/rooms", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["room"])


async def seek(http: httpx.AsyncClient, stack: Stack, slug: str, position: float) -> dict[str, Any]:
    response = await http.post(f"{stack.url}/api/rooms/{slug}/commands", json={
        "type": "seek", "client_id": "deploy-test", "client_ms": now_ms(), "position": position})
    assert response.status_code == 200, response.text
    return dict(response.json()["state"])


async def sse_states(http: httpx.AsyncClient, url: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                await queue.put(json.loads(line[6:]))


async def next_version(queue: asyncio.Queue[dict[str, Any]], version: int, timeout: float = 15.0) -> int:
    """Read until a state of at least ``version`` arrives (states in between may be skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
        if int(state["version"]) >= version:
            return int(state["version"])


def test_healthz_answers_over_http2_with_database_and_redis(stack: Stack) -> None:
    async def scenario() -> None:
        async with client() as http:
            response = await http.get(f"{stack.url}/healthz")
            assert response.http_version == "HTTP/2"
            assert response.status_code == 200
            assert response.json() == {"ok": True, "database": "ok", "redis": "ok"}
            assert "max-age=" in response.headers["strict-transport-security"]
            assert response.headers["x-content-type-options"] == "nosniff"

    asyncio.run(scenario())


def test_check_deploy_is_clean_under_make_serves_settings(stack: Stack) -> None:
    assert "System check identified no issues (0 silenced)." in stack.output()


def test_a_browser_on_the_sites_own_origin_may_command_and_another_may_not(stack: Stack) -> None:
    async def scenario() -> None:
        async with client() as http:
            slug = await create_room(http, stack, "deploy origin")
            body = {"type": "seek", "client_id": "page", "client_ms": now_ms(), "position": 4.0}
            own = await http.post(f"{stack.url}/api/rooms/{slug}/commands", json=body,
                                  headers={"Origin": stack.url})
            assert own.status_code == 200, own.text
            body["client_ms"] = now_ms()
            other = await http.post(f"{stack.url}/api/rooms/{slug}/commands", json=body,
                                    headers={"Origin": "https://evil.example"})
            assert other.status_code == 403
            assert "error" in other.json()

    asyncio.run(scenario())


def test_every_transport_works_through_nginx(stack: Stack) -> None:
    async def scenario() -> None:
        async with client() as http:
            slug = await create_room(http, stack, "deploy transports")
            state = await http.get(f"{stack.url}/api/rooms/{slug}/state")
            assert state.status_code == 200 and state.http_version == "HTTP/2"
            not_modified = await http.get(f"{stack.url}/api/rooms/{slug}/state",
                                          headers={"If-None-Match": state.headers["etag"]})
            assert not_modified.status_code == 304
            events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            sse = asyncio.create_task(sse_states(http, f"{stack.url}/api/rooms/{slug}/events", events))
            assert await next_version(events, 1) == 1
            async with websockets.connect(f"{stack.ws_url}/ws/rooms/{slug}", ssl=tls_context()) as ws:
                assert json.loads(await ws.recv())["state"]["version"] == 1
                poll = asyncio.create_task(http.get(f"{stack.url}/api/rooms/{slug}/poll",
                                                    params={"since": 1, "timeout": 20}))
                await asyncio.sleep(0.5)  # the long poll waits (nginx must not buffer it)
                assert not poll.done()
                await ws.send(json.dumps({"type": "command", "ref": 7, "command": {
                    "type": "play", "client_id": "ws-author", "client_ms": now_ms(), "position": 1.0}}))
                ack = json.loads(await ws.recv())
                while ack.get("type") != "ack":
                    ack = json.loads(await ws.recv())
                assert ack["ref"] == 7 and ack["accepted"] is True
                version = ack["state"]["version"]
                answered = await asyncio.wait_for(poll, 15)
                assert answered.status_code == 200 and answered.json()["version"] == version
                assert await next_version(events, version) == version
            sse.cancel()

    asyncio.run(scenario())


def test_metrics_from_loopback_and_with_the_token_only(stack: Stack) -> None:
    async def scenario() -> None:
        async with client() as http:
            slug = await create_room(http, stack, "deploy metrics")
            async with websockets.connect(f"{stack.ws_url}/ws/rooms/{slug}", ssl=tls_context()) as ws:
                await ws.recv()
                await seek(http, stack, slug, 2.0)
                response = await http.get(f"{stack.url}/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            assert "# TYPE vsync_fanout_seconds histogram" in response.text
            assert "vsync_" in response.text
            # nginx reports the client's address; a client elsewhere needs the token.
            outside = await http.get(f"{stack.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
            assert outside.status_code == 200  # nginx replaces the header: still loopback

    asyncio.run(scenario())
    worker_port = int(stack.workers()[0]["port"])
    direct = f"http://127.0.0.1:{worker_port}/metrics"
    # Straight to a worker, as a trusted proxy saying the client is elsewhere: refused without the token.
    elsewhere = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                 "Host": "localhost"}
    assert httpx.get(direct, headers=elsewhere).status_code == 403
    with_token = httpx.get(direct, headers={**elsewhere, "Authorization": f"Bearer {METRICS_TOKEN}"})
    assert with_token.status_code == 200


def test_uploads_are_streamed_and_media_is_served_by_nginx_with_ranges(stack: Stack) -> None:
    demo = (ROOT / "rooms" / "media" / "demo" / "demo.webm").read_bytes()

    async def scenario() -> None:
        async with client() as http:
            slug = await create_room(http, stack, "deploy upload")
            uploaded = await http.post(f"{stack.url}/api/rooms/{slug}/media",
                                       files={"file": ("clip.webm", demo, "video/webm")})
            assert uploaded.status_code == 200, uploaded.text
            media_url = uploaded.json()["state"]["media"]["url"]
            ranged = await http.get(f"{stack.url}{media_url}", headers={"Range": "bytes=0-99"})
            assert ranged.status_code == 206
            assert ranged.content == demo[:100]
            assert ranged.headers["content-range"] == f"bytes 0-99/{len(demo)}"
            static = await http.get(f"{stack.url}/static/vsync/sync.js")
            assert static.status_code == 200

    asyncio.run(scenario())


def test_a_100_mib_upload_is_refused_with_413_before_it_is_read_whole(stack: Stack) -> None:
    declared = 100 * 1024 * 1024
    head = (f"POST /api/rooms/demo/media HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=15) as raw, \
            tls_context().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(head + b"\0" * (1024 * 1024))  # 1 % of what it announced
        answer = tls.recv(4096).decode(errors="replace")
    status_line = answer.split("\r\n", 1)[0]
    assert status_line.split()[1] == "413", answer
    assert '"error"' in answer


async def reached(queue: asyncio.Queue[dict[str, Any]], stream: asyncio.Task[None], version: int,
                  timeout: float = 15.0) -> bool:
    """True when the viewer got ``version``; False when its stream ended first (its worker died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = await asyncio.wait_for(queue.get(), 0.5)
        except TimeoutError:
            if stream.done():
                return False
            continue
        if int(state["version"]) >= version:
            return True
    raise AssertionError(f"version {version} did not arrive within {timeout} s")


def test_killing_a_worker_leaves_the_others_serving_and_viewers_converge(stack: Stack) -> None:
    async def scenario() -> None:
        async with client() as http:
            slug = await create_room(http, stack, "deploy kill")
            events = f"{stack.url}/api/rooms/{slug}/events"
            viewers = []
            for _ in range(4):  # nginx spreads them over both workers
                queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                viewers.append((queue, asyncio.create_task(sse_states(http, events, queue))))
            for queue, _ in viewers:
                await next_version(queue, 1)
            os.kill(int(stack.workers()[0]["pid"]), signal.SIGKILL)
            # Every request after the kill is answered: nginx skips the dead worker.
            for _ in range(10):
                assert (await http.get(f"{stack.url}/api/rooms/{slug}/state")).status_code == 200
            latest = int((await seek(http, stack, slug, 9.0))["version"])
            outcomes = [await reached(queue, stream, latest) for queue, stream in viewers]
            assert any(outcomes), "no viewer was on the surviving worker"
            # Those whose worker died reconnect, as the page does, and resume on the newest version.
            for lost in range(outcomes.count(False)):
                queue = asyncio.Queue()
                stream = asyncio.create_task(sse_states(http, f"{events}?last_event_id=1", queue))
                assert await reached(queue, stream, latest), f"reconnected viewer {lost} got nothing"
                stream.cancel()
            async with websockets.connect(f"{stack.ws_url}/ws/rooms/{slug}", ssl=tls_context()) as ws:
                assert json.loads(await ws.recv())["state"]["version"] == latest
            for _, stream in viewers:
                stream.cancel()

    asyncio.run(scenario())
    # make serve starts the dead worker again on its port.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = [int(w["pid"]) for w in stack.workers()]
        if all(alive(pid) for pid in pids) and httpx.get(f"{stack.url}/healthz", verify=False).status_code == 200:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the killed worker did not come back:\n{stack.output()}")


def test_nginx_closes_a_client_that_sends_its_headers_too_slowly(stack: Stack) -> None:
    """client_header_timeout (10 s): a slow-loris client never reaches a worker and is closed."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as raw, \
            tls_context().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /api/time HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line
        started = time.monotonic()
        tls.settimeout(30)
        try:
            answer = tls.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            answer = b""
        waited = time.monotonic() - started
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert 5 < waited < 25, f"closed after {waited:.1f} s"
