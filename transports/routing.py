"""Routes served in front of Django: the push endpoints (HTTP and WebSocket).

Long polling and SSE are raw ASGI, not Django views: a sync-only middleware in
settings.MIDDLEWARE (WhiteNoise) makes Django run every async view through the one
thread-sensitive executor, so one waiting long poll would hold it for everyone.
Django's URLconf names them too (rooms.api.urls) so that reverse() works.
"""

from __future__ import annotations

import re
from typing import Any

from channels.security.websocket import WebsocketDenier

from rooms.api.origins import host_allowed, origin_allowed
from transports import chat_poll, hub_stats, long_poll, short_poll, sse
from transports.asgi_http import Receive, Scope, Send, header, request_host, respond_error
from transports.websocket import RoomSocket

PUSH_PATHS = {
    "state": short_poll.app,
    "poll": long_poll.app,
    "events": sse.app,
}
_PUSH_PATH = re.compile(r"^/api/rooms/(?P<slug>[^/]+)/(?P<kind>state|poll|events)/?$")
# A chat read that waits (GET with timeout > 0) is held on the hub like a long poll; the rest of /chat is Django's.
_CHAT_PATH = re.compile(r"^/api/rooms/(?P<slug>[^/]+)/chat/?$")


# The routers below are plain callables that return the chosen application's coroutine
# instead of awaiting it: a router that awaits stays suspended under every open
# connection for its whole life (a frame, its locals, a coroutine object). Measured with
# loadtests.probe at 1,000 WebSocket viewers under uvicorn: Channels' origin validator and
# URLRouter cost 1.9 KiB per viewer (22.5 -> 20.6), ProtocolTypeRouter together with the
# socket's nested read loop 0.8 KiB more (20.6 -> 19.8).


class Application:
    """vsync's ASGI application: HTTP through the push routes or Django, WebSockets to the room socket.

    An ASGI 3 single callable (``_asgi_single_callable`` tells daphne; run uvicorn with
    ``--interface asgi3``, as vsync.launcher does); called the ASGI 2 way, with the
    scope alone, it still answers.
    """

    _asgi_single_callable = True

    def __init__(self, http: Any, websocket: Any) -> None:
        self.http, self.websocket = http, websocket

    def __call__(self, scope: Scope, receive: Receive | None = None, send: Send | None = None) -> Any:
        if receive is None or send is None:  # ASGI 2: scope first, then (receive, send)
            return lambda receive, send: self(scope, receive, send)
        if scope["type"] == "http":
            return self.http(scope, receive, send)
        if scope["type"] == "websocket":
            return self.websocket(scope, receive, send)
        raise ValueError(f"no application for scope type {scope['type']!r}")


class PushRouter:
    """Send ``/api/rooms/{slug}/state``, ``/poll`` and ``/events`` to their transports, everything else to Django.

    Django checks the Host of what it serves (ALLOWED_HOSTS); the raw-ASGI routes check it
    here with the same rule (rooms.api.origins.host_allowed): 400 for any other.
    """

    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app
        self.hub_stats = hub_stats.enabled()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        match = _PUSH_PATH.match(scope["path"])
        if match:
            return self._checked(scope, send) or PUSH_PATHS[match["kind"]](scope, receive, send, match["slug"])
        match = _CHAT_PATH.match(scope["path"])
        if match and chat_poll.wants_wait(scope):
            return self._checked(scope, send) or chat_poll.app(scope, receive, send, match["slug"])
        if self.hub_stats and scope["path"] == hub_stats.PATH:
            return self._checked(scope, send) or hub_stats.app(scope, receive, send)
        return self.django_app(scope, receive, send)

    def _checked(self, scope: Scope, send: Send) -> Any:
        """None for a Host that ALLOWED_HOSTS admits; else the 400 answer's coroutine."""
        if host_allowed(request_host(scope)):
            return None
        return respond_error(send, 400, "the Host header names no host this server serves", "host")


_WS_PATH = re.compile(r"^/ws/rooms/(?P<slug>[^/]+)$")


class WebSocketRouter:
    """``/ws/rooms/{slug}`` to ``RoomSocket`` when the Host and the Origin pass the HTTP API's rules.

    The Host must be one of ALLOWED_HOSTS; the Origin must be the socket's own full origin
    (scheme, host and port: ``http://localhost:9999`` is another program) or a trusted one
    (rooms.api.origins.origin_allowed). A client that sends no Origin is not a browser
    page and passes. Refused at the handshake (HTTP 403).
    """

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        match = _WS_PATH.match(scope["path"])
        if match is None or not self.allowed(scope):
            return WebsocketDenier()(scope, receive, send)
        return RoomSocket(scope, receive, send, match["slug"]).run()

    @staticmethod
    def allowed(scope: Scope) -> bool:
        host = request_host(scope)
        if not host_allowed(host):
            return False
        origin = header(scope, b"origin")
        return origin_allowed(origin.decode("latin-1") if origin is not None else None,
                              scheme=scope.get("scheme", "ws"), host=host)
