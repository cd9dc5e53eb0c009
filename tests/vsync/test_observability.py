"""/healthz, /metrics and the JSON request log, in process (make serve's stack is tests/deploy)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from django.test import Client, override_settings

from vsync import observability
from vsync.observability import JsonFormatter, ObservedApplication, client_address

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_with_the_database_and_no_redis_configured(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok", "redis": "not configured"}
    assert response["Cache-Control"] == "no-store"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_healthz_is_503_when_redis_does_not_answer(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["database"] == "ok" and body["redis"].startswith("error")


def test_healthz_refuses_other_methods_with_a_json_error(client: Client) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "error" in response.json()


def test_metrics_are_served_to_loopback_in_prometheus_text(client: Client) -> None:
    observability.connection_opened("ws")
    observability.command_answered("accepted")
    try:
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    finally:
        observability.connection_closed("ws")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'vsync_connections_open{transport="ws"}' in text
    assert 'vsync_commands_total{outcome="accepted"}' in text
    assert "# TYPE vsync_fanout_seconds histogram" in text


def test_metrics_refuse_another_address_without_the_token(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 403
    assert "error" in response.json()


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_accept_the_bearer_token_from_anywhere(client: Client) -> None:
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer s3cret-token"
                      ).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


@override_settings(VSYNC_TRUSTED_PROXIES=["127.0.0.1"])
def test_metrics_behind_a_trusted_proxy_judge_the_reported_client(client: Client) -> None:
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="203.0.113.5").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="127.0.0.1").status_code == 200


def test_client_address_believes_only_trusted_proxies() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7")]
    assert client_address("127.0.0.1", headers, ["127.0.0.1"]) == "203.0.113.7"
    assert client_address("192.0.2.1", headers, ["127.0.0.1"]) == "192.0.2.1"
    assert client_address("127.0.0.1", [(b"x-real-ip", b"not an address")], ["127.0.0.0/8"]) == "127.0.0.1"


def test_every_request_gets_a_request_id_and_one_json_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        logging.getLogger("vsync.test").warning("inside")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "client": ("127.0.0.1", 5)}
    with caplog.at_level(logging.INFO, logger="vsync.access"):
        asyncio.run(ObservedApplication(app)(scope, receive, send))
    request_id = dict(sent[0]["headers"])[b"x-request-id"].decode()
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    access = [line for line in lines if line["logger"] == "vsync.access"]
    assert len(access) == 1
    assert access[0]["status"] == 204 and access[0]["path"] == "/x" and access[0]["client"] == "127.0.0.1"
    assert access[0]["request_id"] == request_id


def test_websocket_open_and_close_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4404})

    async def send(message: dict[str, Any]) -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws/rooms/x", "headers": [], "client": ("127.0.0.1", 5)}
    with caplog.at_level(logging.INFO, logger="vsync.access"):
        asyncio.run(ObservedApplication(app)(scope, receive, send))
    messages = [(record.getMessage(), record.fields.get("close_code")) for record in caplog.records  # type: ignore[attr-defined]
                if record.name == "vsync.access"]
    assert messages == [("connection open", None), ("connection close", 4404)]
