"""The small pieces of raw ASGI HTTP that long polling and SSE share."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"


def query(scope: Scope) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


async def respond(send: Send, status: int, body: bytes = b"", *, content_type: bytes = JSON,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    all_headers = [(b"cache-control", b"no-cache"), *(headers or [])]
    if body:
        all_headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, status: int, error: str, field: str | None = None) -> None:
    body: dict[str, Any] = {"error": error}
    if status == 400:
        body["field"] = field
    await respond(send, status, json.dumps(body).encode())


async def close_on_disconnect(receive: Receive, on_disconnect: Callable[[], None]) -> None:
    """Read the request to its end, then wait for the client to go away and say so at once."""
    while (await receive())["type"] != "http.disconnect":
        pass
    on_disconnect()
