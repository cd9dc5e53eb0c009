"""Minimal viewers of each transport, for tests: ``next_state`` returns the next newer state."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
SHORT_POLL_INTERVAL_S = 0.05


def now_ms() -> float:
    return time.time() * 1000.0


def create_room(base_url: str, name: str) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/api/rooms", json={"name": name}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def seek(base_url: str, slug: str, position: float, client_id: str = "c-test") -> dict[str, Any]:
    command = {"type": "seek", "client_id": client_id, "client_ms": now_ms(), "position": position}
    response = httpx.post(f"{base_url}/api/rooms/{slug}/commands", json=command, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["state"]


class Viewer:
    """One viewer of one room; ``version`` is the newest version it has seen."""

    def __init__(self, base_url: str, slug: str, since: int | None = None) -> None:
        self.base_url, self.slug, self.version = base_url, slug, since
        self.received: list[dict[str, Any]] = []

    async def __aenter__(self) -> Viewer:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def next_state(self, timeout: float = 10.0) -> dict[str, Any]:
        state = await asyncio.wait_for(self._next(), timeout)
        assert self.version is None or state["version"] > self.version, (state["version"], self.version)
        self.version = state["version"]
        self.received.append(state)
        return state

    async def until(self, version: int, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.next_state(max(0.01, deadline - time.monotonic()))
            if state["version"] >= version:
                return state

    async def _next(self) -> dict[str, Any]:
        raise NotImplementedError


class PollViewer(Viewer):
    async def open(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    async def close(self) -> None:
        await self.http.aclose()

    async def _next(self) -> dict[str, Any]:
        while True:
            headers = {"If-None-Match": f'"{self.version}"'} if self.version is not None else {}
            response = await self.http.get(f"/api/rooms/{self.slug}/state", headers=headers)
            if response.status_code == 200 and (self.version is None or response.json()["version"] > self.version):
                return response.json()
            assert response.status_code in (200, 304), response.text
            await asyncio.sleep(SHORT_POLL_INTERVAL_S)


class LongPollViewer(Viewer):
    async def open(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=70)

    async def close(self) -> None:
        await self.http.aclose()

    async def _next(self) -> dict[str, Any]:
        while True:
            params: dict[str, Any] = {"timeout": 5}
            if self.version is not None:
                params["since"] = self.version
            response = await self.http.get(f"/api/rooms/{self.slug}/poll", params=params)
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 204, response.text


class SseViewer(Viewer):
    async def open(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(10, read=None))
        headers = {"Last-Event-ID": str(self.version)} if self.version is not None else {}
        self.stream = self.http.stream("GET", f"/api/rooms/{self.slug}/events", headers=headers)
        self.response = await self.stream.__aenter__()
        self.lines: list[str] = []
        self.comments: list[str] = []
        self.states: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.chat_events: list[tuple[str, dict[str, Any]]] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Read in the background, so that a test's timeout never cuts an event in half."""
        fields: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            self.lines.append(line)
            if line.startswith(":"):
                self.comments.append(line)
            elif line == "":
                # Chat events (chat, chat-delete, chat-reset) share the stream; this viewer follows the state.
                if "data" in fields and fields.get("event") == "state":
                    # The id is <version>.<chat id>, or a bare <version> while the stream has no chat position.
                    assert int(fields["id"].partition(".")[0]) == json.loads(fields["data"])["version"]
                    await self.states.put(json.loads(fields["data"]))
                elif "data" in fields:
                    self.chat_events.append((fields.get("event", ""), json.loads(fields["data"])))
                fields = {}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    async def close(self) -> None:
        self.reader.cancel()
        await self.stream.__aexit__(None, None, None)
        await self.http.aclose()

    async def _next(self) -> dict[str, Any]:
        return await self.states.get()


class WsViewer(Viewer):
    async def open(self) -> None:
        query = f"?since={self.version}" if self.version is not None else ""
        self.socket = await websockets.connect(f"ws{self.base_url.removeprefix('http')}/ws/rooms/{self.slug}{query}",
                                               max_size=2**20)
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.states: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            await (self.states if message["type"] == "state" else self.replies).put(message)

    async def close(self) -> None:
        self.reader.cancel()
        await self.socket.close()

    async def _next(self) -> dict[str, Any]:
        return (await self.states.get())["state"]

    async def request(self, message: dict[str, Any] | str, timeout: float = 10.0) -> dict[str, Any]:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))
        return await asyncio.wait_for(self.replies.get(), timeout)


VIEWERS: dict[str, type[Viewer]] = {"poll": PollViewer, "longpoll": LongPollViewer, "sse": SseViewer,
                                    "ws": WsViewer}


def viewer(transport: str, base_url: str, slug: str, since: int | None = None) -> Viewer:
    return VIEWERS[transport](base_url, slug, since)
