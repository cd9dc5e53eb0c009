"""Long polling: ``GET /api/rooms/{slug}/poll?since=<version>&timeout=<s>``.

200 with the state as soon as the room's version is greater than ``since`` (at once
if it already is), 204 when ``timeout`` seconds pass without a change.
"""

from __future__ import annotations

import asyncio
import contextlib

from transports.asgi_http import Receive, Scope, Send, close_on_disconnect, query, respond, respond_error
from transports.hub import NoSuchRoom, hub
from transports.resume import BadVersion, parse_version

# Under the 30 s that many proxies and browsers allow an idle request, with margin.
DEFAULT_TIMEOUT_S = 25.0
# Longer than this and intermediaries start cutting requests anyway.
MAX_TIMEOUT_S = 60.0


def parse_timeout(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    try:
        timeout = float(raw)
    except ValueError:
        raise ValueError("timeout must be a number of seconds") from None
    if not timeout >= 0:  # also refuses NaN
        raise ValueError("timeout must be a number of seconds >= 0")
    return min(timeout, MAX_TIMEOUT_S)


async def app(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await respond_error(send, 405, "use GET")
        return
    params = query(scope)
    try:
        since = parse_version(params.get("since"))
    except BadVersion as exc:
        await respond_error(send, 400, str(exc), "since")
        return
    try:
        timeout = parse_timeout(params.get("timeout"))
    except ValueError as exc:
        await respond_error(send, 400, str(exc), "timeout")
        return
    try:
        mailbox = await hub.subscribe(slug, known_version=since)
    except NoSuchRoom:
        await respond_error(send, 404, f"no room {slug!r}")
        return
    watcher = asyncio.ensure_future(close_on_disconnect(receive, mailbox.close))
    try:
        snapshot = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                snapshot = await mailbox.get()
        client_gone = mailbox.closed
    finally:
        hub.unsubscribe(mailbox)
        watcher.cancel()
    if client_gone:
        return
    if snapshot is None:
        await respond(send, 204)
        return
    await respond(send, 200, b"" if scope["method"] == "HEAD" else snapshot.body,
                  headers=[(b"etag", b'"%d"' % snapshot.version)])
