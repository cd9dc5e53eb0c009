"""The clock endpoint: server time for the clients' NTP-style offset estimate."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from rooms.api.http import json_response


@require_GET
async def server_time(request: HttpRequest) -> HttpResponse:
    # Async view: no thread hop, so the stamp is as close to the wire as Django allows.
    return json_response({"server_ms": time.time() * 1000.0}, Cache_Control="no-store")
