"""``GET /_hub/stats``: the hub's counters, for tests and lab runs only (``VSYNC_HUB_STATS=1``).

The fast path's live test reads it to prove daphne really took the fast path: a
release of daphne, autobahn or Twisted that changes what transports.fastwrite reads
makes the hub fall back to the ordinary send silently, and this is where it shows.
"""

from __future__ import annotations

import json
import os

from transports.asgi_http import Receive, Scope, Send, respond, respond_error
from transports.hub import hub

PATH = "/_hub/stats"


def enabled() -> bool:
    return os.environ.get("VSYNC_HUB_STATS") == "1"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    client = scope.get("client") or ("", 0)
    if client[0] not in ("127.0.0.1", "::1"):
        await respond_error(send, 403, "loopback only")
        return
    await respond(send, 200, json.dumps(hub.stats()).encode())
