"""The chat log on the hub and its streams, in-process (no server matters here): order, none twice,
out-of-order arrivals, a gap read from the database, and the slow reader's reset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from rooms.chat import _post
from tests.transports.inprocess import new_room, until
from transports.encoding import ChatFrame
from transports.hub import Hub
from transports.streams import CHAT_PENDING_MAX, WS

pytestmark = pytest.mark.django_db(transaction=True)


async def within(hub: Hub, scenario: Any) -> None:
    """Run ``scenario``, then stop the hub's background tasks while their loop still runs."""
    try:
        await scenario
    finally:
        for job in list(hub._background):
            job.cancel()
        await asyncio.gather(*hub._background, return_exceptions=True)


def frame(slug: str, message_id: int) -> ChatFrame:
    return ChatFrame.from_dict(slug, {"id": message_id, "client_id": "c", "name": "", "text": f"t{message_id}",
                                      "ms": 1.0})


class Socket:
    """A WebSocket ``send`` that records what it is given; ``stall()`` makes it stop returning."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.sent.append(json.loads(message["text"]))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.sent if message["type"] == kind]

    def chat_ids(self) -> list[int]:
        return [message["message"]["id"] for message in self.of("chat")]


async def _test_messages_arriving_out_of_order_are_delivered_in_order_once(fresh_hub: Hub) -> None:
    slug = await new_room("order")
    socket = Socket()
    await fresh_hub.attach(slug, socket, mode=WS, known_version=None)
    for message_id in (2, 1, 1, 3, 2, 5, 4):
        fresh_hub._deliver_chat(frame(slug, message_id))
    await until(lambda: len(socket.of("chat")) == 5)
    await asyncio.sleep(0.05)
    assert socket.chat_ids() == [1, 2, 3, 4, 5]


async def _test_a_gap_the_layer_never_fills_is_read_from_the_database(fresh_hub: Hub) -> None:
    slug = await new_room("gap")
    socket = Socket()
    await fresh_hub.attach(slug, socket, mode=WS, known_version=None)
    # Message 1 is committed but its layer copy is lost; message 2 arrives.
    first = (await database_sync_to_async(_post)(slug=slug, client_id="c-a", text="lost")).payload["message"]
    second = (await database_sync_to_async(_post)(slug=slug, client_id="c-a", text="here")).payload["message"]
    fresh_hub._rooms[slug].chat.chat_id = 0
    fresh_hub._deliver_chat(ChatFrame.from_dict(slug, second))
    await until(lambda: len(socket.of("chat")) == 2)
    assert [message["message"] for message in socket.of("chat")] == [first, second]


async def _test_a_backlog_and_live_messages_overlapping_are_sent_once(fresh_hub: Hub) -> None:
    slug = await new_room("overlap")
    for text in ("a", "b", "c"):
        await database_sync_to_async(_post)(slug=slug, client_id="c-a", text=text)
    socket = Socket()
    stream = await fresh_hub.attach(slug, socket, mode=WS, known_version=1, chat_after=1)
    for message_id in (2, 3):  # the same messages again, as a late layer copy would bring them
        stream.push_chat(frame(slug, message_id))
    fresh_hub._deliver_chat(frame(slug, 4))
    await until(lambda: len(socket.of("chat")) == 3)
    await asyncio.sleep(0.05)
    assert socket.chat_ids() == [2, 3, 4]


async def _test_a_reader_that_stops_gets_one_reset_and_bounded_pending_messages(fresh_hub: Hub) -> None:
    slug = await new_room("slow")
    socket = Socket()
    stream = await fresh_hub.attach(slug, socket, mode=WS, known_version=None)
    await until(lambda: len(socket.of("state")) == 1)
    socket.open.clear()  # the viewer stops reading: the send in flight never returns
    fresh_hub._deliver_chat(frame(slug, 1))
    await asyncio.sleep(0.05)  # its send is in flight, and never returns
    total = CHAT_PENDING_MAX * 3
    for message_id in range(2, total + 1):
        fresh_hub._deliver_chat(frame(slug, message_id))
        assert len(stream._outbox or ()) <= CHAT_PENDING_MAX + 1
    socket.open.set()
    await until(lambda: socket.chat_ids()[-1:] == [total] if socket.of("chat") else False)
    resets = socket.of("chat_reset")
    assert len(resets) >= 1
    ids = socket.chat_ids()
    assert ids == sorted(set(ids)) and len(ids) < total
    # The reset names where this viewer's log stopped, so a re-read from there misses nothing.
    first_reset = socket.sent.index(resets[0])
    before = [m["message"]["id"] for m in socket.sent[:first_reset] if m["type"] == "chat"]
    assert before == [1] and resets[0]["after"] == 1


async def _test_a_waiting_chat_poll_is_answered_by_the_next_message(fresh_hub: Hub) -> None:
    slug = await new_room("poll")
    poll = await fresh_hub.attach_chat_poll(slug, after=0)
    assert not poll.woken.done()
    fresh_hub._deliver_chat(frame(slug, 1))
    assert poll.woken.done() and [f.id for f in poll.messages] == [1]
    # The next poll, caught up, is answered from memory without waiting.
    fresh_hub._deliver_chat(frame(slug, 2))
    again = await fresh_hub.attach_chat_poll(slug, after=1)
    assert again.woken.done() and [f.id for f in again.messages] == [2]


def test_messages_arriving_out_of_order_are_delivered_in_order_once(fresh_hub: Hub) -> None:
    asyncio.run(within(fresh_hub, _test_messages_arriving_out_of_order_are_delivered_in_order_once(fresh_hub)))


def test_a_gap_the_layer_never_fills_is_read_from_the_database(fresh_hub: Hub) -> None:
    asyncio.run(within(fresh_hub, _test_a_gap_the_layer_never_fills_is_read_from_the_database(fresh_hub)))


def test_a_backlog_and_live_messages_overlapping_are_sent_once(fresh_hub: Hub) -> None:
    asyncio.run(within(fresh_hub, _test_a_backlog_and_live_messages_overlapping_are_sent_once(fresh_hub)))


def test_a_reader_that_stops_gets_one_reset_and_bounded_pending_messages(fresh_hub: Hub) -> None:
    asyncio.run(within(fresh_hub, _test_a_reader_that_stops_gets_one_reset_and_bounded_pending_messages(fresh_hub)))


def test_a_waiting_chat_poll_is_answered_by_the_next_message(fresh_hub: Hub) -> None:
    asyncio.run(within(fresh_hub, _test_a_waiting_chat_poll_is_answered_by_the_next_message(fresh_hub)))
