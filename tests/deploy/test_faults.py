"""Faults through make serve's real stack (issue 13): a worker killed, Redis restarted, PostgreSQL restarted.

Viewers on all four transports (SSE, WebSocket, long poll, short poll) follow one room
through nginx and reconnect as the page does; a writer sends commands throughout. After
each fault: every command that got a 200 is in the room's RoomEvent log (read from
PostgreSQL itself), the final state is the last acknowledged one, and every viewer
converges on it. Its own stack (module scope): the faults must not disturb test_serve.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

from tests.deploy.test_serve import Stack, alive, client, create_room, now_ms, stack, tls_context
from vsync import launcher

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]
__all__ = ["stack"]  # the module's own make serve (the fixture, imported)

CONVERGE_S = 30.0


@dataclass
class Follower:
    """One viewer: the newest version it saw, reconnecting (with a short backoff) whenever its connection ends."""

    transport: str
    latest: int = 0
    connects: int = 0
    errors: list[str] = field(default_factory=list)

    def saw(self, state: dict[str, Any]) -> None:
        self.latest = max(self.latest, int(state["version"]))


async def follow(viewer: Follower, stack: Stack, slug: str, stop: asyncio.Event) -> None:
    async with client() as http:
        while not stop.is_set():
            try:
                viewer.connects += 1
                await TRANSPORTS[viewer.transport](viewer, http, stack, slug, stop)
            except (httpx.HTTPError, OSError, websockets.WebSocketException, ValueError, KeyError) as exc:
                viewer.errors.append(type(exc).__name__)
            await asyncio.sleep(0.3)


async def over_sse(viewer: Follower, http: httpx.AsyncClient, stack: Stack, slug: str, stop: asyncio.Event) -> None:
    url = f"{stack.url}/api/rooms/{slug}/events" + (f"?last_event_id={viewer.latest}" if viewer.latest else "")
    async with http.stream("GET", url, timeout=httpx.Timeout(15.0, read=30.0)) as response:
        if response.status_code != 200:
            raise ValueError(f"SSE {response.status_code}")
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"version"' in line:
                viewer.saw(json.loads(line[6:]))
            if stop.is_set():
                return


async def over_ws(viewer: Follower, http: httpx.AsyncClient, stack: Stack, slug: str, stop: asyncio.Event) -> None:
    async with websockets.connect(f"{stack.ws_url}/ws/rooms/{slug}", ssl=tls_context(), open_timeout=15) as ws:
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                continue
            if isinstance(message.get("state"), dict):
                viewer.saw(message["state"])


async def over_long_poll(viewer: Follower, http: httpx.AsyncClient, stack: Stack, slug: str,
                         stop: asyncio.Event) -> None:
    while not stop.is_set():
        response = await http.get(f"{stack.url}/api/rooms/{slug}/poll",
                                  params={"since": viewer.latest, "timeout": 5}, timeout=20.0)
        if response.status_code == 200:
            viewer.saw(response.json())
        elif response.status_code != 204:
            raise ValueError(f"poll {response.status_code}")


async def over_short_poll(viewer: Follower, http: httpx.AsyncClient, stack: Stack, slug: str,
                          stop: asyncio.Event) -> None:
    while not stop.is_set():
        response = await http.get(f"{stack.url}/api/rooms/{slug}/state", timeout=10.0)
        if response.status_code != 200:
            raise ValueError(f"state {response.status_code}")
        viewer.saw(response.json())
        await asyncio.sleep(0.5)


TRANSPORTS: dict[str, Callable[..., Awaitable[None]]] = {
    "sse": over_sse, "ws": over_ws, "long_poll": over_long_poll, "short_poll": over_short_poll}


@dataclass
class Writer:
    """Sends seeks one after another; remembers what was acknowledged (200) and every other answer."""

    acked: list[tuple[int, float]] = field(default_factory=list)
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    async def run(self, stack: Stack, slug: str, stop: asyncio.Event) -> None:
        position = 0.0
        async with client() as http:
            while not stop.is_set():
                position += 1.0
                try:
                    response = await http.post(f"{stack.url}/api/rooms/{slug}/commands", json={
                        "type": "seek", "client_id": "fault-writer", "client_ms": now_ms(), "position": position},
                        timeout=10.0)
                except httpx.HTTPError as exc:  # no answer: not acknowledged
                    self.failed.append(type(exc).__name__)
                else:
                    if response.status_code == 200:
                        self.acked.append((int(response.json()["state"]["version"]), position))
                    else:
                        self.refused.append((response.status_code, response.headers.get("retry-after", ""),
                                             response.text[:200]))
                await asyncio.sleep(0.1)


def logged_versions(stack: Stack, slug: str) -> set[int]:
    """The room's RoomEvent log, straight from make serve's PostgreSQL."""
    base = stack.data_dir / "postgres"
    sql = (f"SELECT e.version FROM rooms_roomevent e JOIN rooms_room r ON r.id = e.room_id "
           f"WHERE r.slug = '{slug}'")
    out = subprocess.run([launcher.postgres_bin("psql"), "-h", str(base / "run"), "-U", "vsync", "-d", "vsync",
                          "-tAc", sql], capture_output=True, text=True, check=True, timeout=30)
    return {int(line) for line in out.stdout.split()}


async def with_viewers(stack: Stack, fault: Callable[[Writer], Awaitable[None]], name: str,
                       per_transport: int = 2) -> tuple[list[Follower], Writer, str]:
    """Viewers on all four transports and a writer; ``fault`` runs while they do; then they must converge."""
    async with client() as http:
        slug = await create_room(http, stack, name)
    stop, writing = asyncio.Event(), asyncio.Event()
    viewers = [Follower(kind) for kind in TRANSPORTS for _ in range(per_transport)]
    tasks = [asyncio.create_task(follow(v, stack, slug, stop)) for v in viewers]
    writer = Writer()
    writes = asyncio.create_task(writer.run(stack, slug, writing))
    try:
        deadline = time.monotonic() + 20
        while not all(v.latest for v in viewers):
            assert time.monotonic() < deadline, f"viewers did not start: {viewers}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        await fault(writer)
        await asyncio.sleep(2.0)  # writes after the fault, once all is back
        writing.set()
        await writes
        assert writer.acked, f"nothing was acknowledged: {writer}"
        last = max(version for version, _ in writer.acked)
        deadline = time.monotonic() + CONVERGE_S
        while not all(v.latest >= last for v in viewers):
            assert time.monotonic() < deadline, f"viewers did not converge on {last}: {viewers}"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        writing.set()
        for task in [*tasks, writes]:
            task.cancel()
        await asyncio.gather(*tasks, writes, return_exceptions=True)
    acked_versions = {version for version, _ in writer.acked}
    missing = acked_versions - logged_versions(stack, slug)
    assert not missing, f"acknowledged but not in the RoomEvent log: {sorted(missing)}"
    async with client() as http:
        final = (await http.get(f"{stack.url}/api/rooms/{slug}/state")).json()
    last_version, last_position = max(writer.acked)
    assert final["version"] == last_version, (final, writer.acked[-3:])
    assert abs(float(final["position"]) - last_position) < 1e-6  # a new room is paused: the seek's position
    return viewers, writer, slug


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.2)


def test_a_killed_worker_loses_nothing_acknowledged_on_any_transport(stack: Stack) -> None:
    async def kill(_: Writer) -> None:
        await asyncio.sleep(1.0)
        os.kill(int(stack.workers()[0]["pid"]), signal.SIGKILL)
        await asyncio.sleep(3.0)  # writes go on while the other worker carries everything

    viewers, writer, _ = asyncio.run(with_viewers(stack, kill, "fault kill"))
    assert any(v.connects > 1 for v in viewers), "no viewer was on the killed worker"
    assert {v.transport for v in viewers if v.connects > 1} & {"sse", "ws"}, viewers
    # nginx retries a refused connection on the other worker; no command got a 5xx from the kill.
    assert not [r for r in writer.refused if r[0] >= 500 and r[0] != 502], writer.refused
    wait_for(lambda: all(alive(int(w["pid"])) for w in stack.workers())
             and httpx.get(f"{stack.url}/healthz", verify=False).status_code == 200, "the worker came back")


def test_redis_restarted_viewers_converge_on_the_newest_version(stack: Stack) -> None:
    pid_file = stack.data_dir / "serve" / "redis.pid"

    async def restart_redis(_: Writer) -> None:
        before = int(pid_file.read_text())
        os.kill(before, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, wait_for, lambda: int(pid_file.read_text()) != before
                                   and httpx.get(f"{stack.url}/healthz", verify=False).status_code == 200,
                                   "make serve started Redis again")
        await asyncio.sleep(3.0)  # the workers' subscriptions reconnect

    _, writer, _ = asyncio.run(with_viewers(stack, restart_redis, "fault redis"))
    assert not [r for r in writer.refused if r[0] == 500], writer.refused


def test_postgresql_restarted_commands_get_503_with_retry_after_and_nothing_acknowledged_is_lost(
        stack: Stack) -> None:
    base = stack.data_dir / "postgres"
    pg_ctl = launcher.postgres_bin("pg_ctl")

    async def restart_postgres(writer: Writer) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: subprocess.run(launcher.as_postgres_user(
            [pg_ctl, "-D", str(base / "pgdata"), "-m", "fast", "-w", "stop"]), check=True, capture_output=True))
        refused_before = len(writer.refused)
        await asyncio.sleep(3.0)  # the writer keeps sending into the outage
        during = writer.refused[refused_before:]
        await loop.run_in_executor(None, lambda: launcher.PostgresServer(base).start())
        assert during, "no command was answered during the outage"
        assert all(status == 503 for status, _, _ in during), during
        assert all(int(retry_after) >= 1 for _, retry_after, _ in during), during
        assert all('"error"' in body for _, _, body in during), during

    asyncio.run(with_viewers(stack, restart_postgres, "fault postgres"))
