"""What a running vsync tells its operator: Prometheus metrics, and JSON logs that carry a request id.

The metric functions are cheap enough for the hub's hot path (a lock and an add; with
PROMETHEUS_MULTIPROC_DIR set, a write into a memory-mapped file that /metrics sums over
every worker). Logs are JSON only when settings.VSYNC_JSON_LOGS is on (make serve).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as METRICS_CONTENT_TYPE
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from rooms.signals import chat_message_posted, room_state_changed

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = ["METRICS_CONTENT_TYPE", "JsonFormatter", "ObservedApplication", "chat_message_sent", "client_address",
           "command_answered", "connection_closed", "connection_opened", "fanout_observed", "media_resolved",
           "metrics_text", "rate_limited", "version_published"]

# The hub's stream modes, named as the contract names the transports ("poll" there is a long poll).
TRANSPORT_OF_MODE = {"poll": "longpoll", "sse": "sse", "ws": "ws"}
OUTCOME_OF_STATUS = {200: "accepted", 409: "stale", 400: "invalid", 401: "unauthorized", 403: "denied",
                     404: "not_found", 413: "too_large", 429: "rate_limited"}
# The end-to-end fan-out goals are 25 ms at 1,000 viewers and 150 ms at 10,000 (README); the
# hub's own share is a fraction of that: buckets from 1 ms.
FANOUT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

CONNECTIONS = Gauge("vsync_connections_open", "Open push connections (SSE, long polls, WebSockets) by transport",
                    ["transport"], multiprocess_mode="livesum")
FANOUT = Histogram("vsync_fanout_seconds", "Time one process takes to hand one version to all its local "
                   "viewers (the hub's delivery loop)", buckets=FANOUT_BUCKETS)
COMMANDS = Counter("vsync_commands_total", "Commands answered, by outcome", ["outcome"])
VERSIONS = Counter("vsync_versions_published_total", "Room versions committed and published")
CHAT = Counter("vsync_chat_messages_total", "Chat messages accepted")
MEDIA = Counter("vsync_media_resolutions_total", "Media URL resolutions, by outcome", ["outcome"])
RATE_LIMITED = Counter("vsync_rate_limited_total", "Requests refused by a rate limit, by limit", ["limit"])
REQUESTS = Counter("vsync_http_requests_total", "HTTP responses, by status code", ["status"])

access_log = logging.getLogger("vsync.access")
request_id: ContextVar[str] = ContextVar("vsync_request_id", default="")


@functools.cache
def _labelled(metric: Any, value: str) -> Any:
    """A metric's child for one label value, looked up once per process. Every label here comes from
    a small fixed set (transports, outcomes, statuses, limits); ``labels()`` takes a lock and validates
    each time, and with a long poll opening and closing a connection per version it showed in daphne's
    profile."""
    return metric.labels(value)


def connection_opened(transport: str) -> None:
    _labelled(CONNECTIONS, TRANSPORT_OF_MODE.get(transport, transport)).inc()


def connection_closed(transport: str) -> None:
    _labelled(CONNECTIONS, TRANSPORT_OF_MODE.get(transport, transport)).dec()


def fanout_observed(seconds: float) -> None:
    FANOUT.observe(max(0.0, seconds))


def version_published() -> None:
    VERSIONS.inc()


def command_answered(outcome: str | int) -> None:
    """``outcome``: rooms.results' kind (``accepted``, ``stale``, ``invalid`` ...) or an HTTP status."""
    label = OUTCOME_OF_STATUS.get(outcome, str(outcome)) if isinstance(outcome, int) else outcome
    _labelled(COMMANDS, label).inc()
    if label in ("limited", "rate_limited"):
        rate_limited("command")


def chat_message_sent() -> None:
    CHAT.inc()


def media_resolved(outcome: str) -> None:
    """``outcome``: ``ok``, or a short reason (``unsupported``, ``timeout``, ``blocked`` ...)."""
    _labelled(MEDIA, outcome).inc()


def rate_limited(limit: str) -> None:
    """``limit``: which one refused (``command``, ``presence``, ``chat``, ``address`` ...)."""
    _labelled(RATE_LIMITED, limit).inc()


def connect_signals() -> None:
    """Count versions and chat messages where they are published: rooms.signals, after commit."""
    room_state_changed.connect(_count_version, dispatch_uid="vsync.observability.versions")
    chat_message_posted.connect(_count_chat, dispatch_uid="vsync.observability.chat")


def _count_version(**_: Any) -> None:
    VERSIONS.inc()


def _count_chat(**_: Any) -> None:
    CHAT.inc()


def metrics_text() -> bytes:
    """Prometheus text for the whole server: summed over the workers when they share a multiprocess folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def client_address(peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted: Iterable[str]) -> str:
    """The client's address: the peer's, or what a trusted proxy (nginx) reports in X-Real-IP/X-Forwarded-For."""
    if not peer or not _is_trusted(peer, trusted):
        return peer or ""
    found = {name.lower(): value.decode("latin-1") for name, value in headers}
    reported = found.get(b"x-real-ip") or found.get(b"x-forwarded-for", "").rsplit(",", 1)[-1]
    reported = reported.strip()
    try:
        return str(ipaddress.ip_address(reported))
    except ValueError:
        return peer


def _is_trusted(peer: str, trusted: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
        return any(address in ipaddress.ip_network(entry, strict=False) for entry in trusted)
    except ValueError:
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id, and any ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                                "message": record.getMessage()}
        current = request_id.get()
        if current:
            line["request_id"] = current
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# A request id the client (or a proxy in front) sent is kept when it looks like one.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class ObservedApplication:
    """ASGI middleware: a request id for every request and socket, one log line per request, per socket open/close.

    Wrapped around vsync.asgi's application only when VSYNC_JSON_LOGS is on: it stays
    suspended under every open connection (about a kilobyte each), which the lab's
    figures leave out, and it hides daphne's socket from the fast path (transports.fastwrite).
    """

    _asgi_single_callable = True

    def __init__(self, app: Any, trusted: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        incoming = next((value.decode("latin-1") for name, value in headers if name == b"x-request-id"), "")
        current = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(current)
        peer = scope.get("client")
        fields: dict[str, Any] = {"kind": scope["type"], "method": scope.get("method", "GET"),
                                  "path": scope.get("path", ""),
                                  "client": client_address(peer[0] if peer else None, headers, self.trusted)}
        started = time.perf_counter()
        state: dict[str, Any] = {"status": None, "bytes": 0}

        async def observed_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", current.encode())]}
                if any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                       for name, value in message.get("headers", [])):
                    _log("connection open", fields, transport="sse")
            elif kind == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                state["status"] = 101
                _log("connection open", fields, transport="ws")
            elif kind == "websocket.close":
                state["close_code"] = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            state["status"] = state["status"] or 500
            raise
        finally:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            if scope["type"] == "http":
                _labelled(REQUESTS, str(state["status"] or 0)).inc()
                _log("request", fields, status=state["status"], ms=elapsed_ms, bytes=state["bytes"])
            else:
                _log("connection close" if state["status"] == 101 else "connection refused", fields,
                     transport="ws", ms=elapsed_ms, close_code=state.get("close_code"))
            request_id.reset(token)


def _log(message: str, fields: dict[str, Any], **more: Any) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(message, extra={"fields": {"request_id": request_id.get(), **fields, **more}})
