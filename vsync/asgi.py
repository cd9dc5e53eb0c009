"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsync.settings")
# Populate the app registry before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from transports.routing import BrowserOriginValidator, PushRouter, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Long polling and SSE are answered in front of Django's middleware (see transports.routing).
        "http": PushRouter(django_asgi_app),
        # AllowedHostsOriginValidator for browsers; clients without Origin pass, as on the HTTP API.
        "websocket": BrowserOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
