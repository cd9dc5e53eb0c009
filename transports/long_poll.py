"""Long polling: ``GET /api/rooms/{slug}/poll?since=<version>&timeout=<s>``.

200 with the state as soon as the room's version is greater than ``since`` (at once
if it already is), 204 when ``timeout`` seconds pass without a change.
"""

from __future__ import annotations

import asyncio

from transports.asgi_http import Receive, Scope, Send, close_on_disconnect, query, respond, respond_error
from transports.hub import NoSuchRoom, hub
from transports.resume import BadVersion, parse_version
from transports.streams import POLL, Stream

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
        stream = await hub.attach(slug, send, mode=POLL, known_version=since, head=scope["method"] == "HEAD")
    except NoSuchRoom:
        await respond_error(send, 404, f"no room {slug!r}")
        return
    # The hub writes the 200 itself (transports.streams); this coroutine only handles the
    # timeout and the client leaving, and waits until an answer that began is complete.
    await _wait(stream, receive, timeout)
    if not stream.claimed and not stream.gone:
        await respond(send, 204)


async def _wait(stream: Stream, receive: Receive, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    timed_out = False

    def on_timeout() -> None:
        nonlocal timed_out
        timed_out = True
        stream.notify()

    def on_gone() -> None:
        stream.gone = True
        stream.notify()

    timer = loop.call_later(timeout, on_timeout)
    watcher = asyncio.ensure_future(close_on_disconnect(receive, on_gone))
    try:
        while stream.busy or not (stream.claimed or timed_out or stream.gone):
            stream.waiter = loop.create_future()
            await stream.waiter
    finally:
        timer.cancel()
        watcher.cancel()
        hub.unsubscribe(stream)  # closes it: from here on the hub cannot start an answer
