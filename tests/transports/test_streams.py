"""The per-connection streams: sends run as asyncio tasks of the connection's own, latest wins."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging

import pytest

from transports.encoding import Snapshot
from transports.streams import EventStream, LongPoll, SocketStream

viewer_name: contextvars.ContextVar[str] = contextvars.ContextVar("viewer_name", default="nobody")


def snapshot(version: int) -> Snapshot:
    return Snapshot(room="demo", version=version, json_text=json.dumps({"version": version}))


def versions(messages: list[dict]) -> list[int]:
    return [json.loads(message["text"])["state"]["version"] for message in messages if "text" in message]


def test_a_send_that_uses_asyncio_timeout_is_delivered() -> None:
    # A send driven by hand, outside any task, would raise here ("Timeout should be used inside a task").
    async def scenario() -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            async with asyncio.timeout(1):
                await asyncio.sleep(0)
                sent.append(message)

        stream = SocketStream("demo", send, known_version=None, newest=lambda: None)
        stream.push(snapshot(1))
        await asyncio.sleep(0.05)
        return sent

    assert versions(asyncio.run(scenario())) == [1]


def test_a_send_runs_in_the_connections_contextvars() -> None:
    async def connection(seen: list[str]) -> SocketStream:
        viewer_name.set("alice")  # set in the connection's own coroutine

        async def send(message: dict) -> None:
            seen.append(viewer_name.get())

        return SocketStream("demo", send, known_version=None, newest=lambda: None)

    async def scenario() -> list[str]:
        seen: list[str] = []
        stream = await asyncio.create_task(connection(seen))
        stream.push(snapshot(1))  # from the hub's loop, where viewer_name is unset
        await asyncio.sleep(0.01)
        return seen

    assert asyncio.run(scenario()) == ["alice"]


def test_a_failing_send_is_logged_and_the_stream_gets_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> int:
        calls = 0

        async def send(message: dict) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("the server refused the message")

        stream = EventStream("demo", send, known_version=None, newest=lambda: None)
        stream.push(snapshot(1))
        await asyncio.sleep(0.01)
        assert stream.detached
        stream.push(snapshot(2))
        stream.heartbeat()
        await asyncio.sleep(0.01)
        return calls

    with caplog.at_level(logging.ERROR, logger="transports.streams"):
        assert asyncio.run(scenario()) == 1
    assert "send to a sse viewer of demo failed" in caplog.text
    assert "the server refused the message" in caplog.text


def test_queued_messages_all_arrive_in_order_while_states_skip_to_the_newest() -> None:
    async def scenario() -> list[dict]:
        sent: list[dict] = []
        gate = asyncio.Event()

        async def send(message: dict) -> None:
            await gate.wait()
            sent.append(message)

        newest: list[Snapshot] = [snapshot(1)]
        stream = SocketStream("demo", send, known_version=None, newest=lambda: newest[-1])
        stream.push(newest[-1])
        for index in range(3):
            stream.send_message({"type": "websocket.send", "text": json.dumps({"type": "chat", "n": index})})
            newest.append(snapshot(index + 2))
            stream.push(newest[-1])
        gate.set()
        await asyncio.sleep(0.05)
        return sent

    sent = asyncio.run(scenario())
    chats = [json.loads(message["text"])["n"] for message in sent if '"chat"' in message["text"]]
    assert chats == [0, 1, 2]
    assert versions([message for message in sent if '"state"' in message["text"]]) == [1, 4]


def test_an_ended_socket_sends_its_close_after_what_is_in_flight_and_nothing_after() -> None:
    async def scenario() -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            await asyncio.sleep(0)
            sent.append(message)

        stream = SocketStream("demo", send, known_version=None, newest=lambda: snapshot(9))
        stream.push(snapshot(1))
        stream.end(code=4403, status=403, error="kicked")
        stream.push(snapshot(2))
        await asyncio.sleep(0.05)
        return sent

    sent = asyncio.run(scenario())
    assert sent[-1] == {"type": "websocket.close", "code": 4403}
    assert versions(sent[:-1]) == [1]


def test_a_long_poll_takes_one_newer_answer_and_ignores_the_rest() -> None:
    async def scenario() -> tuple[int | None, bool]:
        poll = LongPoll("demo", known_version=3)
        poll.push(snapshot(3))
        assert not poll.woken.done()
        poll.push(snapshot(5))
        poll.push(snapshot(6))
        poll.end(code=4403, status=403, error="kicked")
        return (poll.answer.version if poll.answer else None), poll.denied is None

    assert asyncio.run(scenario()) == (5, True)
