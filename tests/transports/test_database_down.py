"""A database that does not answer: the raw-ASGI endpoints say 503 with Retry-After, the WebSocket
closes 4503 at connect and refuses a command with an ack, and stays open (in-process, a fresh hub;
the error is injected where the transports meet the database)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError

from tests.transports.inprocess import http_open, http_scope, new_room
from tests.transports.test_admission import close_code, ws_open
from transports import admission, websocket
from transports import hub as hub_module
from transports.hub import Hub

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = [("state", b""), ("poll", b"since=0&timeout=1"), ("events", b""), ("chat", b"after=0&timeout=1")]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def down(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("could not connect to server: Connection refused")


async def http_answer(scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes], bytes]:
    client = await http_open(scope)
    start = await client.receive_output(3)
    body = await client.receive_output(3)
    return start["status"], dict(start["headers"]), body.get("body", b"")


@pytest.mark.parametrize(("kind", "query"), PATHS)
def test_a_database_down_at_admission_is_a_503_with_retry_after(fresh_hub: Hub, monkeypatch: pytest.MonkeyPatch,
                                                                  kind: str, query: bytes) -> None:
    async def scenario() -> None:
        slug = await new_room(f"down {kind}")
        monkeypatch.setattr(admission, "room_access", down)
        status, headers, body = await http_answer(http_scope(f"/api/rooms/{slug}/{kind}", query))
        assert status == 503 and headers[b"retry-after"] == b"2"
        assert json.loads(body)["error"]

    run(scenario())


@pytest.mark.parametrize(("kind", "query"), PATHS)
def test_a_database_down_when_the_room_is_read_is_a_503(fresh_hub: Hub, monkeypatch: pytest.MonkeyPatch,
                                                          kind: str, query: bytes) -> None:
    async def scenario() -> None:
        slug = await new_room(f"read down {kind}")
        read_state = hub_module._read_state
        monkeypatch.setattr(hub_module, "_read_state", lambda slug: _raise(InterfaceError("connection already closed")))
        status, headers, body = await http_answer(http_scope(f"/api/rooms/{slug}/{kind}", query))
        assert status == 503 and headers[b"retry-after"] == b"2" and json.loads(body)["error"]
        # Nothing was kept from the failure: the database back, the same room answers.
        monkeypatch.setattr(hub_module, "_read_state", read_state)
        status, _, _ = await http_answer(http_scope(f"/api/rooms/{slug}/state"))
        assert status == 200

    run(scenario())


async def _raise(exc: Exception) -> Any:
    raise exc


def test_a_websocket_closes_4503_when_the_database_is_down_at_connect(fresh_hub: Hub,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        slug = await new_room("ws down")
        monkeypatch.setattr(admission, "room_access", down)
        socket = await ws_open(f"/ws/rooms/{slug}")
        assert await close_code(socket) == 4503

    run(scenario())


def test_a_websocket_command_during_an_outage_is_refused_by_ack_and_the_socket_stays(
        fresh_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        slug = await new_room("ws command down")
        socket = await ws_open(f"/ws/rooms/{slug}")
        assert (await socket.receive_json_from(3))["type"] == "state"
        monkeypatch.setattr(websocket, "command_submit", down)
        await socket.send_json_to({"type": "command", "ref": 5, "command": {
            "type": "seek", "client_id": "c-a", "client_ms": 1.0, "position": 3.0}})
        ack = await socket.receive_json_from(3)
        assert ack["type"] == "ack" and ack["ref"] == 5 and ack["accepted"] is False
        assert ack["error"] and ack["status"] == 503
        await socket.send_json_to({"type": "ping", "ref": 6})
        assert await socket.receive_json_from(3) == {"type": "pong", "ref": 6}
        await socket.disconnect()

    run(scenario())
