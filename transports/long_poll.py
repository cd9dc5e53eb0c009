"""Long polling: ``GET /api/rooms/{slug}/poll?since=<version>&timeout=<s>``.

200 with the state as soon as the room's version is greater than ``since`` (at once
if it already is), 204 when ``timeout`` seconds pass without a change.
"""

from __future__ import annotations

import asyncio

from transports.admission import admit
from transports.asgi_http import Receive, Scope, Send, close_on_disconnect, query, respond, respond_error
from transports.hub import hub, respond_refusal
from transports.resume import BadVersion, parse_version
from transports.streams import POLL, LongPoll

# Under the 30 s that many proxies and browsers allow an idle request, with margin.
DEFAULT_TIMEOUT_S = 25.0
# Longer than this and intermediaries start cutting requests anyway.
MAX_TIMEOUT_S = 60.0
EMPTY_BODY = {"type": "http.response.body", "body": b""}


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
        admission = await admit(scope, slug, token_in_query=False)
        stream = await hub.attach(slug, None, mode=POLL, known_version=since, admission=admission)
    except Exception as exc:
        if not await respond_refusal(send, slug, exc):
            raise
        return
    assert isinstance(stream, LongPoll)
    # This coroutine writes the answer itself: the hub only hands it a newer version (or
    # ends it) and wakes it; the timeout and the client leaving wake it too.
    left = asyncio.ensure_future(close_on_disconnect(receive, lambda: None))
    try:
        await asyncio.wait((stream.woken, left), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(stream)  # from here on the hub cannot hand it anything
        gone = left.done()
        left.cancel()
    if stream.answer is not None:
        await send(stream.answer.poll_start)
        await send(EMPTY_BODY if scope["method"] == "HEAD" else stream.answer.poll_body)
    elif stream.denied is not None:
        await respond_error(send, *stream.denied)
    elif not gone:
        await respond(send, 204)
