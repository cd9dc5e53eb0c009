"""The wire contract of every transport, against a real daphne server in a subprocess."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.support.clients import TRANSPORTS, create_room, now_ms, seek, viewer
from tests.support.servers import LiveServer

PUSH = ["longpoll", "sse", "ws"]


@pytest.fixture
def room(push_server: LiveServer) -> dict:
    return create_room(push_server.url, f"push {uuid.uuid4().hex[:8]}")


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_receives_a_change(push_server: LiveServer, room: dict, transport: str) -> None:
    async def scenario() -> None:
        async with viewer(transport, push_server.url, room["room"]) as watcher:
            assert (await watcher.next_state())["version"] == 1
            changed = await asyncio.to_thread(seek, push_server.url, room["room"], 7.5)
            assert await watcher.next_state() == changed

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_versions_only_increase_and_end_on_the_newest(push_server: LiveServer, room: dict, transport: str) -> None:
    async def scenario() -> None:
        async with viewer(transport, push_server.url, room["room"]) as watcher:
            await watcher.next_state()
            last = None
            for i in range(15):
                last = await asyncio.to_thread(seek, push_server.url, room["room"], float(i), f"c-{i}")
            final = await watcher.until(last["version"])
            assert final == last
            versions = [state["version"] for state in watcher.received]
            assert versions == sorted(set(versions))

    run(scenario())


@pytest.mark.parametrize("transport", PUSH)
def test_resume_from_an_old_version_sends_the_newest_at_once(push_server: LiveServer, room: dict,
                                                            transport: str) -> None:
    for i in range(3):
        newest = seek(push_server.url, room["room"], float(i), f"c-{i}")

    async def scenario() -> None:
        async with viewer(transport, push_server.url, room["room"], since=1) as watcher:
            assert await watcher.next_state(timeout=3) == newest

    run(scenario())


@pytest.mark.parametrize("transport", PUSH)
def test_resume_from_the_current_version_waits_for_the_next(push_server: LiveServer, room: dict,
                                                           transport: str) -> None:
    async def scenario() -> None:
        async with viewer(transport, push_server.url, room["room"], since=1) as watcher:
            with pytest.raises(TimeoutError):
                await watcher.next_state(timeout=1)
            changed = await asyncio.to_thread(seek, push_server.url, room["room"], 3.0)
            assert await watcher.next_state() == changed

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_resume_from_an_unknown_future_version_resets_a_stream(push_server: LiveServer, room: dict,
                                                              transport: str) -> None:
    async def scenario() -> None:
        watcher = viewer(transport, push_server.url, room["room"], since=999)
        async with watcher:
            watcher.version = None  # the client accepts the reset
            assert (await watcher.next_state(timeout=3))["version"] == 1

    run(scenario())


def test_long_poll_from_an_unknown_future_version_waits(push_server: LiveServer, room: dict) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/{room['room']}/poll", params={"since": 999, "timeout": 0.5})
    assert response.status_code == 204


def test_short_poll_etag_resume(push_server: LiveServer, room: dict) -> None:
    url = f"{push_server.url}/api/rooms/{room['room']}/state"
    assert httpx.get(url, headers={"If-None-Match": '"1"'}).status_code == 304
    assert httpx.get(url, headers={"If-None-Match": '"999"'}).status_code == 200


def test_long_poll_timeout_answers_204(push_server: LiveServer, room: dict) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/{room['room']}/poll", params={"since": 1, "timeout": 0.5})
    assert response.status_code == 204
    assert response.content == b""


def test_long_poll_answers_at_once_when_newer_with_etag(push_server: LiveServer, room: dict) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/{room['room']}/poll", params={"since": 0})
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == {key: value for key, value in room.items() if key != "owner_token"}


def test_sse_headers_retry_and_heartbeat(push_server: LiveServer, room: dict) -> None:
    async def scenario() -> None:
        async with viewer("sse", push_server.url, room["room"], since=1) as watcher:
            headers = watcher.response.headers
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            with pytest.raises(TimeoutError):
                await watcher.next_state(timeout=2.5)  # the server ticks every second here
            assert watcher.lines[0].startswith("retry:")
            assert watcher.comments

    run(scenario())


def test_sse_last_event_id_query_parameter(push_server: LiveServer, room: dict) -> None:
    async def scenario() -> None:
        url = f"{push_server.url}/api/rooms/{room['room']}/events?last_event_id=1"
        async with httpx.AsyncClient() as http, http.stream("GET", url) as response:
            lines = response.aiter_lines()
            assert (await asyncio.wait_for(lines.__anext__(), 2)).startswith("retry:")
            await asyncio.to_thread(seek, push_server.url, room["room"], 2.0)
            events = []
            async for line in lines:
                if line.startswith("id:"):
                    events.append(int(line.removeprefix("id:")))
                    break
            assert events == [2]

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "longpoll", "poll"])
def test_a_websocket_command_reaches_the_other_transports(push_server: LiveServer, room: dict,
                                                          transport: str) -> None:
    async def scenario() -> None:
        async with viewer("ws", push_server.url, room["room"]) as author, \
                viewer(transport, push_server.url, room["room"], since=1) as watcher:
            await author.next_state()
            ack = await author.request({"type": "command", "ref": "r1", "command": {
                "type": "play", "client_id": "c-ws", "client_ms": now_ms(), "position": 4.0}})
            assert ack["type"] == "ack" and ack["ref"] == "r1" and ack["accepted"] is True
            assert await watcher.next_state() == ack["state"]

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "longpoll", "poll"])
def test_an_http_command_reaches_websocket_viewers(push_server: LiveServer, room: dict, transport: str) -> None:
    async def scenario() -> None:
        async with viewer("ws", push_server.url, room["room"], since=1) as watcher:
            changed = await asyncio.to_thread(seek, push_server.url, room["room"], 9.0)
            assert await watcher.next_state() == changed

    run(scenario())


def test_websocket_time_exchange(push_server: LiveServer, room: dict) -> None:
    async def scenario() -> None:
        async with viewer("ws", push_server.url, room["room"]) as watcher:
            before = now_ms()
            reply = await watcher.request({"type": "time", "t0": 123.5})
            assert reply["type"] == "time" and reply["t0"] == 123.5
            assert before - 1000 <= reply["server_ms"] <= now_ms() + 1000

    run(scenario())


def test_websocket_stale_command_is_acked_with_reason(push_server: LiveServer, room: dict) -> None:
    seek(push_server.url, room["room"], 1.0)

    async def scenario() -> None:
        async with viewer("ws", push_server.url, room["room"]) as watcher:
            ack = await watcher.request({"type": "command", "ref": 5, "command": {
                "type": "pause", "client_id": "c-old", "client_ms": 1.0, "position": 0.0}})
            assert ack == {**ack, "type": "ack", "ref": 5, "accepted": False, "reason": "stale"}
            assert ack["state"]["version"] == 2

    run(scenario())


def test_the_state_json_is_the_same_on_every_transport(push_server: LiveServer, room: dict) -> None:
    async def scenario() -> list[dict]:
        watchers = [viewer(t, push_server.url, room["room"]) for t in TRANSPORTS]
        for watcher in watchers:
            await watcher.open()
        try:
            return [await watcher.next_state() for watcher in watchers]
        finally:
            for watcher in watchers:
                await watcher.close()

    states = run(scenario())
    assert all(json.dumps(state, sort_keys=True) == json.dumps(states[0], sort_keys=True) for state in states)
