"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import gc
import os
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsync.settings")
# Populate the app registry before importing anything that touches models.
django_asgi_app = get_asgi_application()

from rooms.media.gc import ensure_upload_sweeper  # noqa: E402
from rooms.media.refresh import ensure_refresher  # noqa: E402
from rooms.scheduler import ensure_scheduler  # noqa: E402
from transports.routing import Application, PushRouter, WebSocketRouter  # noqa: E402
from vsync.http_guard import BodyLimit  # noqa: E402
from vsync.observability import ObservedApplication, connect_signals  # noqa: E402

# A server holding thousands of connections has a large, long-lived heap, and each
# version fanned out to them allocates a little per connection; with the default
# thresholds the collector then stalls the event loop for tens of milliseconds in the
# middle of a fan-out (one A/B pair on the shared 2-core machine, p99 at 10,000 SSE viewers:
# 232 ms with the defaults, 155 ms with gen 0 at 100,000). Everything imported so far lives for the whole
# process, so freeze it out of every collection, and collect the young less often.
GC_THRESHOLDS = (10_000, 20, 100)
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)

# Long polling and SSE are answered in front of Django's middleware (see transports.routing);
# WebSockets go to the room socket, for browsers behind AllowedHostsOriginValidator's rule.
# A serving process re-resolves expiring stream URLs itself, also for rooms set up before it started.
ensure_refresher()
# ... and takes the server's step when a playing room reaches the end of its media (rooms.scheduler).
ensure_scheduler()
# ... and deletes uploads that no room references any more, after the grace period (rooms.media.gc).
ensure_upload_sweeper()
# BodyLimit: the per-route body limits for servers that stream bodies (uvicorn); under daphne
# vsync.daphne_guard has refused an oversize body before it got here.
application: Any = BodyLimit(Application(http=PushRouter(django_asgi_app), websocket=WebSocketRouter()))
connect_signals()  # /metrics counts versions and chat messages as they are published
if settings.VSYNC_JSON_LOGS:  # make serve: a request id and a JSON line per request and socket
    application = ObservedApplication(application, trusted=settings.VSYNC_TRUSTED_PROXIES)
