"""Every bad input on the push transports: answered, never fatal to the connection."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from rooms.commands import MAX_BODY_BYTES
from tests.support.clients import WsViewer, create_room, now_ms
from tests.support.servers import LiveServer
from transports.websocket import CLOSE_BAD_SINCE, CLOSE_NO_SUCH_ROOM


@pytest.fixture
def slug(push_server: LiveServer) -> str:
    return create_room(push_server.url, f"bad {uuid.uuid4().hex[:8]}")["room"]


def ws_replies(server: LiveServer, slug: str, messages: list) -> list[dict]:
    """Send each message on one socket, collect one reply each, and prove the socket still works."""

    async def scenario() -> list[dict]:
        async with WsViewer(server.url, slug) as socket:
            await socket.next_state()
            replies = [await socket.request(message) for message in messages]
            assert (await socket.request({"type": "time", "t0": 1}))["type"] == "time"
            return replies

    return asyncio.run(scenario())


@pytest.mark.parametrize("message", [
    "not json",
    "[1, 2]",
    json.dumps({"type": "dance"}),
    json.dumps({"no": "type"}),
    json.dumps({"type": "time"}),
    json.dumps({"type": "time", "t0": "soon"}),
], ids=["not-json", "not-object", "unknown-type", "no-type", "time-without-t0", "time-not-number"])
def test_websocket_bad_message_answers_error_and_stays_open(push_server: LiveServer, slug: str,
                                                            message: str) -> None:
    [reply] = ws_replies(push_server, slug, [message])
    assert reply["type"] == "error" and reply["error"]


def test_websocket_oversize_message_is_refused(push_server: LiveServer, slug: str) -> None:
    big = json.dumps({"type": "time", "t0": 1, "pad": "x" * MAX_BODY_BYTES})
    [reply] = ws_replies(push_server, slug, [big])
    assert reply["type"] == "error" and str(MAX_BODY_BYTES) in reply["error"]


@pytest.mark.parametrize(("command", "field"), [
    ({"type": "jump", "client_id": "c", "client_ms": 1}, "type"),
    ({"type": "seek", "client_id": "c", "client_ms": 1}, "position"),
    ({"type": "seek", "client_id": "c", "client_ms": 1, "position": -1}, "position"),
    ({"type": "rate", "client_id": "c", "client_ms": 1, "rate": 9}, "rate"),
    ({"type": "seek", "client_id": "", "client_ms": 1, "position": 1}, "client_id"),
    ("not an object", "body"),
    (None, "body"),
])
def test_websocket_invalid_command_is_acked_with_error(push_server: LiveServer, slug: str, command: object,
                                                       field: str) -> None:
    [ack] = ws_replies(push_server, slug, [{"type": "command", "ref": "x", "command": command}])
    assert ack["type"] == "ack" and ack["ref"] == "x" and ack["accepted"] is False
    assert ack["status"] == 400 and ack["field"] == field and ack["error"]
    assert ack["state"]["version"] == 1


def test_websocket_command_from_the_future_is_refused(push_server: LiveServer, slug: str) -> None:
    command = {"type": "play", "client_id": "c", "client_ms": now_ms() + 60_000, "position": 0}
    [ack] = ws_replies(push_server, slug, [{"type": "command", "ref": 1, "command": command}])
    assert ack["accepted"] is False and ack["field"] == "client_ms"


def _close_code(url: str, **kwargs: object) -> int:
    async def scenario() -> int:
        async with websockets.connect(url, **kwargs) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
            return closed.value.rcvd.code

    return asyncio.run(scenario())


def test_websocket_unknown_room_closes_4404(push_server: LiveServer) -> None:
    assert _close_code(f"{push_server.ws_url}/ws/rooms/no-such-room") == CLOSE_NO_SUCH_ROOM
    assert _close_code(f"{push_server.ws_url}/ws/rooms/Not_A_Slug!") == CLOSE_NO_SUCH_ROOM


def test_websocket_unknown_path_is_refused_at_the_handshake(push_server: LiveServer) -> None:
    async def scenario() -> None:
        for path in ("/ws/rooms/a/b", "/ws/elsewhere", "/ws/rooms/"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(f"{push_server.ws_url}{path}"):
                    pass
            assert refused.value.response.status_code == 403, path

    asyncio.run(scenario())


def test_websocket_bad_since_closes_4400(push_server: LiveServer, slug: str) -> None:
    assert _close_code(f"{push_server.ws_url}/ws/rooms/{slug}?since=abc") == CLOSE_BAD_SINCE


def test_websocket_foreign_origin_is_refused(push_server: LiveServer, slug: str) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{push_server.ws_url}/ws/rooms/{slug}", origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_websocket_own_origin_is_accepted(push_server: LiveServer, slug: str) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"{push_server.ws_url}/ws/rooms/{slug}",
                                      origin=f"http://127.0.0.1:{push_server.port}") as socket:
            assert json.loads(await socket.recv())["type"] == "state"

    asyncio.run(scenario())


@pytest.mark.parametrize(("params", "field"), [({"since": "abc"}, "since"), ({"since": "-1"}, "since"),
                                               ({"timeout": "soon"}, "timeout"), ({"timeout": "-2"}, "timeout"),
                                               ({"timeout": "nan"}, "timeout")])
def test_long_poll_bad_parameters_answer_400(push_server: LiveServer, slug: str, params: dict, field: str) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/{slug}/poll", params=params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_long_poll_timeout_is_capped_at_60_s(push_server: LiveServer, slug: str) -> None:
    from transports.long_poll import MAX_TIMEOUT_S, parse_timeout

    assert parse_timeout("3600") == MAX_TIMEOUT_S == 60


@pytest.mark.parametrize("kind", ["poll", "events"])
def test_unknown_room_answers_404(push_server: LiveServer, kind: str) -> None:
    response = httpx.get(f"{push_server.url}/api/rooms/no-such-room/{kind}")
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("kind", ["poll", "events"])
def test_post_answers_405(push_server: LiveServer, slug: str, kind: str) -> None:
    assert httpx.post(f"{push_server.url}/api/rooms/{slug}/{kind}").status_code == 405


def test_sse_garbage_last_event_id_gets_the_current_state(push_server: LiveServer, slug: str) -> None:
    async def scenario() -> str:
        url = f"{push_server.url}/api/rooms/{slug}/events"
        async with httpx.AsyncClient() as http, http.stream("GET", url, headers={"Last-Event-ID": "zz"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    return line

        return ""

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == "id: 1"


@pytest.mark.parametrize("kind", ["poll", "events"])
def test_a_superscript_digit_in_since_answers_400(push_server: LiveServer, slug: str, kind: str) -> None:
    # "²".isdigit() is True and int("²") raises: the check must be ASCII digits, not isdigit().
    response = httpx.get(f"{push_server.url}/api/rooms/{slug}/{kind}?since=%C2%B2")
    assert response.status_code == 400
    assert response.json()["field"] == "since"


def test_websocket_superscript_digit_in_since_closes_4400(push_server: LiveServer, slug: str) -> None:
    assert _close_code(f"{push_server.ws_url}/ws/rooms/{slug}?since=%C2%B2") == CLOSE_BAD_SINCE


@pytest.mark.parametrize("message", [
    '{"type": "time", "t0": NaN}',
    '{"type": "time", "t0": Infinity}',
    '{"type": "time", "t0": 1e400}',
    '{"type": "ping", "ref": 1e400}',
    "[" * 5000 + "]" * 5000,
    '{"type": "ping", "ref": ' + "[" * 5000 + "]" * 5000 + "}",
], ids=["nan", "infinity", "overflow", "overflow-ref", "nested", "nested-ref"])
def test_websocket_numbers_json_forbids_and_deep_nesting_answer_error_and_stay_open(
        push_server: LiveServer, slug: str, message: str) -> None:
    [reply] = ws_replies(push_server, slug, [message])
    assert reply["type"] == "error" and reply["error"]
