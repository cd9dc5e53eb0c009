"""vsync's application with a tracemalloc snapshot on ``GET /__tracemalloc/<name>`` (loadtests.memory_trace only).

The server must run with ``PYTHONTRACEMALLOC=<frames>``; the snapshot goes to the folder named by
``VSYNC_TRACEMALLOC_DIR`` as ``<name>.pickle``. Never part of a served deployment.
"""

from __future__ import annotations

import os
import re
import tracemalloc
from pathlib import Path
from typing import Any

from vsync.asgi import application as vsync_application

_NAME = re.compile(r"^/__tracemalloc/([a-z0-9-]{1,40})$")


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    match = _NAME.match(scope.get("path", "")) if scope["type"] == "http" else None
    if match is None:
        await vsync_application(scope, receive, send)
        return
    tracemalloc.take_snapshot().dump(str(Path(os.environ["VSYNC_TRACEMALLOC_DIR"]) / f"{match[1]}.pickle"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
