"""Chat as a log over the four transports, against real daphne: every message in order, none
twice, across a reconnect (SSE's Last-Event-ID, the WebSocket's chat_after, the polls' after=);
WebSocket chat acks; deletions reach the pushing transports."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from tests.support.clients import create_room, seek, viewer
from tests.support.servers import LiveServer

_authors = itertools.count()


def say(base_url: str, slug: str, text: str, client_id: str | None = None) -> dict[str, Any]:
    """Post one message (a new client_id each time unless told: the per-client limit is 5 in a burst)."""
    body = {"client_id": client_id or f"c-{next(_authors)}", "text": text}
    response = httpx.post(f"{base_url}/api/rooms/{slug}/chat", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["message"]


class SseChat:
    """An SSE reader that keeps every event: (event, id, data)."""

    def __init__(self, base_url: str, slug: str, last_event_id: str | None = None) -> None:
        self.url = f"{base_url}/api/rooms/{slug}/events"
        self.headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        self.events: asyncio.Queue[tuple[str, str | None, Any]] = asyncio.Queue()
        self.last_id: str | None = last_event_id

    async def __aenter__(self) -> SseChat:
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
        self.stream = self.http.stream("GET", self.url, headers=self.headers)
        response = await self.stream.__aenter__()
        assert response.status_code == 200
        self.reader = asyncio.ensure_future(self._read(response))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.stream.__aexit__(None, None, None)
        await self.http.aclose()

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in fields:
                    if "id" in fields:
                        self.last_id = fields["id"]
                    await self.events.put((fields.get("event", "message"), fields.get("id"),
                                           json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    async def next(self, kind: str, timeout: float = 10) -> tuple[str | None, Any]:
        """The next event of ``kind`` (others are skipped, and kept in ``skipped``)."""
        while True:
            event, event_id, data = await asyncio.wait_for(self.events.get(), timeout)
            if event == kind:
                return event_id, data

    async def quiet(self, seconds: float) -> list[tuple[str, str | None, Any]]:
        """Everything that arrives within ``seconds``."""
        seen = []
        try:
            while True:
                seen.append(await asyncio.wait_for(self.events.get(), seconds))
        except TimeoutError:
            return seen


class WsChat:
    def __init__(self, base_url: str, slug: str, query: str = "") -> None:
        self.url = f"ws{base_url.removeprefix('http')}/ws/rooms/{slug}{query}"
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> WsChat:
        self.socket = await websockets.connect(self.url, max_size=2**20)
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.socket.close()

    async def _read(self) -> None:
        async for raw in self.socket:
            await self.messages.put(json.loads(raw))

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.messages.get(), timeout)
            if message["type"] == kind:
                return message

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        seen = []
        try:
            while True:
                seen.append(await asyncio.wait_for(self.messages.get(), seconds))
        except TimeoutError:
            return seen


async def chat_poll(http: httpx.AsyncClient, slug: str, after: int, timeout: float) -> httpx.Response:
    return await http.get(f"/api/rooms/{slug}/chat", params={"after": after, "timeout": timeout})


@pytest.fixture
def slug(push_server: LiveServer) -> str:
    return create_room(push_server.url, f"chat {uuid.uuid4().hex[:8]}")["room"]


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_sse_delivers_every_message_in_order_and_resumes_from_last_event_id(push_server: LiveServer,
                                                                            slug: str) -> None:
    url = push_server.url

    async def scenario() -> None:
        async with SseChat(url, slug) as sse:
            state_id, state = await sse.next("state")
            assert state_id == "1" and state["version"] == 1  # no chat yet: the bare version, as v1
            sent = [await asyncio.to_thread(say, url, slug, f"m{i}") for i in range(5)]
            got = [(await sse.next("chat"))[1] for _ in sent]
            assert got == sent
            assert sse.last_id == f"1.{sent[-1]['id']}"
            # A state event carries the chat position too.
            changed = await asyncio.to_thread(seek, url, slug, 3.0)
            state_id, state = await sse.next("state")
            assert (state_id, state) == (f"{changed['version']}.{sent[-1]['id']}", changed)
            last_id = sse.last_id
        missed = [await asyncio.to_thread(say, url, slug, f"gap{i}") for i in range(3)]
        async with SseChat(url, slug, last_event_id=last_id) as sse:
            assert [data for _, _, data in await sse.quiet(1.0)] == missed  # no state: it had this version
            live = await asyncio.to_thread(say, url, slug, "live")
            assert (await sse.next("chat"))[1] == live
            assert await sse.quiet(0.5) == []

    run(scenario())


def test_sse_resume_sends_the_newer_state_and_the_missed_messages(push_server: LiveServer, slug: str) -> None:
    url = push_server.url
    first = say(url, slug, "one")
    second = say(url, slug, "two")
    newest = seek(url, slug, 9.0)

    async def scenario() -> None:
        async with SseChat(url, slug, last_event_id=f"1.{first['id']}") as sse:
            events = await sse.quiet(1.0)
            assert [(event, data) for event, _, data in events] == [("state", newest), ("chat", second)]
            assert [event_id for _, event_id, _ in events] == [f"{newest['version']}.{first['id']}",
                                                              f"{newest['version']}.{second['id']}"]

    run(scenario())


def test_sse_bare_version_gets_v1_state_rule_and_the_newest_messages(push_server: LiveServer, slug: str) -> None:
    url = push_server.url
    messages = [say(url, slug, f"m{i}") for i in range(3)]

    async def scenario() -> None:
        async with SseChat(url, slug, last_event_id="1") as sse:
            events = await sse.quiet(1.0)
            assert [(event, data) for event, _, data in events] == [("chat", m) for m in messages]

    run(scenario())


def test_websocket_delivers_in_order_and_resumes_with_chat_after(push_server: LiveServer, slug: str) -> None:
    url = push_server.url

    async def scenario() -> None:
        async with WsChat(url, slug) as ws:
            await ws.next("state")
            sent = [await asyncio.to_thread(say, url, slug, f"m{i}") for i in range(5)]
            assert [(await ws.next("chat"))["message"] for _ in sent] == sent
        missed = [await asyncio.to_thread(say, url, slug, f"gap{i}") for i in range(3)]
        async with WsChat(url, slug, f"?since=1&chat_after={sent[-1]['id']}") as ws:
            assert [m["message"] for m in await ws.quiet(1.0)] == missed  # and no state: it had version 1
            live = await asyncio.to_thread(say, url, slug, "live")
            assert (await ws.next("chat"))["message"] == live
            assert await ws.quiet(0.5) == []

    run(scenario())


def test_websocket_chat_is_acked_with_the_message_and_reaches_sse(push_server: LiveServer, slug: str) -> None:
    url = push_server.url

    async def scenario() -> None:
        async with WsChat(url, slug) as author, SseChat(url, slug) as watcher:
            await author.next("state")
            await watcher.next("state")
            await author.socket.send(json.dumps({"type": "chat", "ref": "r1", "client_id": "c-ws", "text": " hi "}))
            # The broadcast and the ack race (the message is published on commit): both come, once.
            first, second = [await asyncio.wait_for(author.messages.get(), 10) for _ in range(2)]
            by_type = {first["type"]: first, second["type"]: second}
            ack = by_type["ack"]
            assert ack["ref"] == "r1" and ack["accepted"] is True and ack["status"] == 201
            assert ack["message"]["text"] == "hi" and ack["message"]["client_id"] == "c-ws"
            assert by_type["chat"]["message"] == ack["message"]
            assert (await watcher.next("chat"))[1] == ack["message"]
            await author.socket.send(json.dumps({"type": "chat", "ref": 2, "client_id": "c-ws", "text": "  "}))
            refused = await author.next("ack")
            assert (refused["ref"], refused["accepted"], refused["field"], refused["status"]) == (2, False, "text", 400)

    run(scenario())


def test_long_poll_waits_for_a_message_and_resumes_with_after(push_server: LiveServer, slug: str) -> None:
    url = push_server.url

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await chat_poll(http, slug, 0, 0.5)).status_code == 204
            waiting = asyncio.ensure_future(chat_poll(http, slug, 0, 10))
            await asyncio.sleep(0.3)
            first = await asyncio.to_thread(say, url, slug, "first")
            answer = await waiting
            assert answer.status_code == 200 and answer.json() == {"messages": [first]}
            # The poller was away while three more came: the next poll answers them at once, in order.
            missed = [await asyncio.to_thread(say, url, slug, f"gap{i}") for i in range(3)]
            answer = await chat_poll(http, slug, first["id"], 10)
            assert answer.json() == {"messages": missed}
            assert (await chat_poll(http, slug, missed[-1]["id"], 0.5)).status_code == 204
            assert (await chat_poll(http, slug, 0, 5)).json() == {"messages": [first, *missed]}

    run(scenario())


def test_short_poll_reads_every_message_with_after(push_server: LiveServer, slug: str) -> None:
    url = push_server.url
    sent = [say(url, slug, f"m{i}") for i in range(4)]
    with httpx.Client(base_url=url, timeout=10) as http:
        got: list[dict[str, Any]] = []
        after = 0
        for _ in range(3):
            response = http.get(f"/api/rooms/{slug}/chat", params={"after": after})
            assert response.status_code == 200
            got += response.json()["messages"]
            after = got[-1]["id"] if got else after
            if after == sent[1]["id"]:
                break
        assert got == sent
        more = [say(url, slug, f"n{i}") for i in range(2)]
        assert http.get(f"/api/rooms/{slug}/chat", params={"after": after}).json()["messages"] == more


@pytest.mark.parametrize(("after", "timeout", "field"), [("x", "5", "after"), ("-1", "5", "after"),
                                                         ("0", "nan", "timeout"), ("0", "61", "timeout"),
                                                         ("0", "-1", "timeout"), ("0", "abc", "timeout")])
def test_bad_chat_poll_parameters_answer_400(push_server: LiveServer, slug: str, after: str, timeout: str,
                                             field: str) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/{slug}/chat", params={"after": after, "timeout": timeout})
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_waiting_chat_poll_of_a_missing_room_is_404(push_server: LiveServer) -> None:
    assert httpx.get(f"{push_server.url}/api/rooms/no-such-room/chat", params={"timeout": 1}).status_code == 404


def test_a_deleted_message_is_removed_on_sse_and_websocket(push_server: LiveServer) -> None:
    url = push_server.url
    created = create_room(url, f"chat del {uuid.uuid4().hex[:6]}")
    slug = created["room"]
    joined = httpx.post(f"{url}/api/rooms/{slug}/join", json={"client_id": "c-own",
                                                              "owner_token": created["owner_token"]})
    owner = {"Authorization": f"Bearer {joined.json()['member_token']}"}

    async def scenario() -> None:
        async with WsChat(url, slug) as ws, SseChat(url, slug) as sse:
            await ws.next("state")
            await sse.next("state")
            message = await asyncio.to_thread(say, url, slug, "oops")
            await ws.next("chat")
            await sse.next("chat")
            deleted = await asyncio.to_thread(httpx.delete, f"{url}/api/rooms/{slug}/chat/{message['id']}",
                                              headers=owner)
            assert deleted.status_code == 200, deleted.text
            assert (await ws.next("chat_delete"))["id"] == message["id"]
            event_id, data = await sse.next("chat-delete")
            assert event_id is None and data == {"id": message["id"]}

    run(scenario())


def test_the_sse_test_viewer_follows_the_state_past_chat_events(push_server: LiveServer, slug: str) -> None:
    """tests.support.clients.SseViewer: chat events share the stream and ids are <version>.<chat id>."""
    async def scenario() -> None:
        async with viewer("sse", push_server.url, slug) as sse:
            assert (await sse.next_state())["version"] == 1
            await asyncio.to_thread(say, push_server.url, slug, "between the states")
            await asyncio.to_thread(seek, push_server.url, slug, 4.0)
            assert (await sse.next_state())["version"] == 2
            assert [event for event, _ in sse.chat_events] == ["chat"]

    asyncio.run(scenario())
