"""Routes served in front of Django: the push endpoints (HTTP and WebSocket).

Long polling and SSE are raw ASGI, not Django views: a sync-only middleware in
settings.MIDDLEWARE (WhiteNoise) makes Django run every async view through the one
thread-sensitive executor, so one waiting long poll would hold it for everyone.
Django's URLconf names them too (transports.urls) so that reverse() works.
"""

from __future__ import annotations

import re
from typing import Any

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from transports import long_poll, short_poll, sse
from transports.asgi_http import Receive, Scope, Send
from transports.websocket import RoomSocket

PUSH_PATHS = {
    "state": short_poll.app,
    "poll": long_poll.app,
    "events": sse.app,
}
_PUSH_PATH = re.compile(r"^/api/rooms/(?P<slug>[^/]+)/(?P<kind>state|poll|events)/?$")


class PushRouter:
    """Send ``/api/rooms/{slug}/poll`` and ``/events`` to their transports, everything else to Django."""

    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _PUSH_PATH.match(scope["path"])
            if match:
                await PUSH_PATHS[match["kind"]](scope, receive, send, match["slug"])
                return
        await self.django_app(scope, receive, send)


class BrowserOriginValidator:
    """AllowedHostsOriginValidator for browsers; a client that sends no Origin is not a browser page.

    Same rule as the HTTP API (transports.http.origin_allowed): a cross-site page
    always sends Origin, so only a missing header is let through unchecked.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.checked = AllowedHostsOriginValidator(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if any(name == b"origin" for name, _ in scope.get("headers", [])):
            await self.checked(scope, receive, send)
        else:
            await self.app(scope, receive, send)


websocket_urlpatterns: list = [
    path("ws/rooms/<str:slug>", RoomSocket.app, name="ws-room"),
]
