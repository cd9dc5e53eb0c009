"""Who may hold a connection to a room: rooms.access at connect, the end of a kicked member's
connections, a re-check when access narrows, and the per-address cap (in-process, a fresh hub)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from rooms.access import hash_token
from rooms.models import Member, Room
from rooms.signals import member_ended, room_access_changed
from tests.transports.inprocess import http_open, http_scope, new_room, until
from transports.asgi_http import client_address, member_token
from transports.hub import Hub

pytestmark = pytest.mark.django_db(transaction=True)
MEMBER_TOKEN = "member-token-of-c-m"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# -- the address and the token (pure) ------------------------------------------------


def scope_with(peer: str, *headers: tuple[bytes, bytes], query: bytes = b"") -> dict[str, Any]:
    return {"client": (peer, 1234), "headers": list(headers), "query_string": query}


def test_the_address_is_the_peer_unless_the_peer_is_a_trusted_proxy(settings: Any) -> None:
    settings.VSYNC_TRUSTED_PROXIES = []
    forged = (b"x-forwarded-for", b"203.0.113.9")
    assert client_address(scope_with("198.51.100.1", forged)) == "198.51.100.1"
    settings.VSYNC_TRUSTED_PROXIES = ["127.0.0.1"]
    assert client_address(scope_with("198.51.100.1", forged)) == "198.51.100.1"
    assert client_address(scope_with("127.0.0.1", forged)) == "203.0.113.9"
    assert client_address(scope_with("127.0.0.1")) == "127.0.0.1"


def test_only_the_hops_left_of_the_trusted_proxies_are_the_clients(settings: Any) -> None:
    settings.VSYNC_TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.2"]
    chain = (b"x-forwarded-for", b"6.6.6.6, 203.0.113.9, 10.0.0.2")  # the first hop is the client's own claim
    assert client_address(scope_with("127.0.0.1", chain)) == "203.0.113.9"
    assert client_address(scope_with("127.0.0.1", (b"x-real-ip", b"203.0.113.7"))) == "203.0.113.7"
    assert client_address(scope_with("127.0.0.1", (b"x-forwarded-for", b"not an address"))) == "127.0.0.1"


def test_the_member_token_comes_from_bearer_cookie_or_where_allowed_the_query() -> None:
    bearer = (b"authorization", b"Bearer abc")
    cookie = (b"cookie", b"other=1; vsync_member_room-a=def; vsync_member_room-b=ghi")
    assert member_token(scope_with("1.1.1.1", bearer, cookie), "room-a", from_query=False) == "abc"
    assert member_token(scope_with("1.1.1.1", cookie), "room-a", from_query=False) == "def"
    assert member_token(scope_with("1.1.1.1", cookie), "room-b", from_query=False) == "ghi"
    assert member_token(scope_with("1.1.1.1", query=b"token=q"), "room-a", from_query=False) is None
    assert member_token(scope_with("1.1.1.1", query=b"token=q"), "room-a", from_query=True) == "q"


# -- in-process, over vsync.asgi.application ------------------------------------------


async def member_room(name: str, *, password: bool) -> str:
    slug = await new_room(name)

    def setup() -> None:
        room = Room.objects.get(slug=slug)
        if password:
            Room.objects.filter(pk=room.pk).update(password_hash="pbkdf2_sha256$set-by-the-test")
        Member.objects.create(room=room, client_id="c-m", token_hash=hash_token(MEMBER_TOKEN),
                              role=Member.Role.VIEWER, transport=Member.Transport.WS, last_seen=timezone.now())

    await database_sync_to_async(setup)()
    return slug


def bearer(token: str = MEMBER_TOKEN) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def http_answer(scope: dict[str, Any]) -> tuple[int, dict[str, bytes], bytes]:
    client = await http_open(scope)
    start = await client.receive_output(3)
    body = await client.receive_output(3)
    return start["status"], dict(start["headers"]), body.get("body", b"")


async def ws_open(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    from vsync.asgi import application

    socket = WebsocketCommunicator(application, path, headers=headers or [])
    socket.scope["client"] = ("127.0.0.1", 50001)  # as a real server says; read after the handshake
    socket.scope["server"] = ("127.0.0.1", 8000)  # the Host a client without the header reached (ALLOWED_HOSTS)
    connected, _ = await socket.connect()
    assert connected  # accepted: refusals come right after the handshake, as a close code
    return socket


async def close_code(socket: WebsocketCommunicator) -> int:
    message = await socket.receive_output(3)
    while message["type"] == "websocket.send":
        message = await socket.receive_output(3)
    assert message["type"] == "websocket.close", message
    return message["code"]


@pytest.mark.parametrize("kind", ["state", "poll", "events"])
def test_a_password_room_refuses_http_without_a_member_token(fresh_hub: Hub, kind: str) -> None:
    async def scenario() -> None:
        slug = await member_room(f"locked {kind}", password=True)
        status, _, body = await http_answer(http_scope(f"/api/rooms/{slug}/{kind}", b"since=0"))
        assert status == 401 and json.loads(body)["error"]
        status, _, body = await http_answer(http_scope(f"/api/rooms/{slug}/{kind}", b"since=0", bearer()))
        assert status == 200, body
        assert fresh_hub.viewer_count() <= 1

    run(scenario())


def test_an_unknown_token_is_401_even_in_an_open_room(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("open room", password=False)
        status, _, _ = await http_answer(http_scope(f"/api/rooms/{slug}/state", headers=bearer("forged")))
        assert status == 401
        socket = await ws_open(f"/ws/rooms/{slug}?token=forged")
        assert await close_code(socket) == 4401

    run(scenario())


def test_a_password_room_closes_a_websocket_without_a_token_4401_and_admits_one_with_it(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("locked ws", password=True)
        socket = await ws_open(f"/ws/rooms/{slug}")
        assert await close_code(socket) == 4401
        for path, headers in ((f"/ws/rooms/{slug}?token={MEMBER_TOKEN}", None),
                              (f"/ws/rooms/{slug}", [(b"cookie", f"vsync_member_{slug}={MEMBER_TOKEN}".encode())])):
            socket = await ws_open(path, headers)
            assert (await socket.receive_json_from(3))["type"] == "state"
            await socket.disconnect()

    run(scenario())


def test_an_unknown_room_closes_a_websocket_4404(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        socket = await ws_open("/ws/rooms/no-such-room")
        assert await close_code(socket) == 4404

    run(scenario())


async def open_all_three(slug: str, headers: list[tuple[bytes, bytes]]) -> tuple[Any, Any, Any]:
    socket = await ws_open(f"/ws/rooms/{slug}", headers)
    assert (await socket.receive_json_from(3))["type"] == "state"
    events = await http_open(http_scope(f"/api/rooms/{slug}/events", b"", headers))
    assert (await events.receive_output(3))["status"] == 200
    poll = await http_open(http_scope(f"/api/rooms/{slug}/poll", b"since=1&timeout=30", headers))
    return socket, events, poll


async def sse_ended(events: Any) -> bool:
    """Read the stream until its final body message; True if it ended (more_body false)."""
    while True:
        message = await events.receive_output(3)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            return True


def test_a_kicked_member_loses_every_connection_at_once(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("kick", password=False)
        socket, events, poll = await open_all_three(slug, bearer())
        bystander = await ws_open(f"/ws/rooms/{slug}")
        assert (await bystander.receive_json_from(3))["type"] == "state"
        await until(lambda: fresh_hub.viewer_count() == 4)
        member_ended.send(sender=Room, room=slug, client_id="c-m", code=4403)
        assert await close_code(socket) == 4403
        assert await sse_ended(events)
        start = await poll.receive_output(3)
        assert start["status"] == 403
        assert json.loads((await poll.receive_output(3))["body"])["error"]
        await until(lambda: fresh_hub.viewer_count() == 1)  # the bystander stays
        assert (await bystander.receive_nothing(0.2))
        for client in (events, poll):
            await client.wait(3)
        await bystander.disconnect()

    run(scenario())


def test_a_password_set_later_ends_the_anonymous_connections_only(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("narrowed", password=False)
        anonymous = await open_all_three(slug, [])
        member = await ws_open(f"/ws/rooms/{slug}", bearer())
        assert (await member.receive_json_from(3))["type"] == "state"
        await until(lambda: fresh_hub.viewer_count() == 4)
        await database_sync_to_async(Room.objects.filter(slug=slug).update)(password_hash="pbkdf2_sha256$later")
        room_access_changed.send(sender=Room, room=slug)
        socket, events, poll = anonymous
        assert await close_code(socket) == 4401
        assert await sse_ended(events)
        assert (await poll.receive_output(3))["status"] == 401
        await until(lambda: fresh_hub.viewer_count() == 1)
        assert await member.receive_nothing(0.2)
        await member.disconnect()

    run(scenario())


def test_over_the_per_address_cap_http_is_429_with_retry_after_and_a_websocket_closes_4429(
        fresh_hub: Hub, settings: Any) -> None:
    settings.VSYNC_ADDRESS_LIMITS = True
    settings.VSYNC_MAX_CONNECTIONS_PER_ADDRESS = 2

    async def scenario() -> None:
        slug = await new_room("capped")
        held = [await http_open(http_scope(f"/api/rooms/{slug}/events")),
                await http_open(http_scope(f"/api/rooms/{slug}/poll", b"since=1&timeout=30"))]
        await until(lambda: fresh_hub.viewer_count() == 2)
        for kind in ("events", "poll"):
            status, headers, body = await http_answer(http_scope(f"/api/rooms/{slug}/{kind}", b"since=1"))
            assert status == 429 and int(headers[b"retry-after"]) > 0 and json.loads(body)["error"]
        assert await close_code(await ws_open(f"/ws/rooms/{slug}")) == 4429
        other = await http_open(http_scope(f"/api/rooms/{slug}/events", client="192.0.2.5"))
        assert (await other.receive_output(3))["status"] == 200  # another address has its own allowance
        await held[0].send_input({"type": "http.disconnect"})
        await held[0].wait(3)
        socket = await ws_open(f"/ws/rooms/{slug}")  # a slot was freed at once
        assert (await socket.receive_json_from(3))["type"] == "state"
        await socket.disconnect()
        for client in (held[1], other):
            await client.send_input({"type": "http.disconnect"})
            await client.wait(3)
        assert fresh_hub.viewer_count() == 0

    run(scenario())


def test_with_address_limits_off_there_is_no_cap(fresh_hub: Hub, settings: Any) -> None:
    settings.VSYNC_ADDRESS_LIMITS = False
    settings.VSYNC_MAX_CONNECTIONS_PER_ADDRESS = 1

    async def scenario() -> None:
        slug = await new_room("uncapped")
        clients = [await http_open(http_scope(f"/api/rooms/{slug}/events")) for _ in range(3)]
        for client in clients:
            assert (await client.receive_output(3))["status"] == 200
            await client.send_input({"type": "http.disconnect"})
            await client.wait(3)

    run(scenario())


def test_a_viewer_in_a_hosts_only_room_gets_a_refused_ack_and_nothing_changes(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("hosts only", password=False)
        await database_sync_to_async(Room.objects.filter(slug=slug).update)(control=Room.Control.HOSTS,
                                                                            owner_token_hash="0" * 64)
        socket = await ws_open(f"/ws/rooms/{slug}", bearer())
        assert (await socket.receive_json_from(3))["state"]["version"] == 1
        await socket.send_json_to({"type": "command", "ref": 7, "command": {
            "type": "seek", "client_id": "c-m", "client_ms": 1.0, "position": 3.0}})
        ack = await socket.receive_json_from(3)
        assert ack["type"] == "ack" and ack["ref"] == 7 and ack["accepted"] is False
        assert ack["status"] == 403 and ack["error"] and ack["state"]["version"] == 1
        await socket.disconnect()

    run(scenario())


def test_a_kept_admission_is_forgotten_when_the_room_narrows(fresh_hub: Hub) -> None:
    async def scenario() -> None:
        slug = await member_room("kept", password=False)
        status, _, _ = await http_answer(http_scope(f"/api/rooms/{slug}/state"))
        assert status == 200  # admitted, and kept for the next polls
        await database_sync_to_async(Room.objects.filter(slug=slug).update)(password_hash="pbkdf2_sha256$now")
        room_access_changed.send(sender=Room, room=slug)
        await asyncio.sleep(0)
        status, _, _ = await http_answer(http_scope(f"/api/rooms/{slug}/state"))
        assert status == 401

    run(scenario())
