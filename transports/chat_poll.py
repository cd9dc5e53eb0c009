"""Waiting chat reads: ``GET /api/rooms/{slug}/chat?after=<id>&timeout=<s>`` with ``timeout`` > 0.

200 ``{"messages": [...]}`` (oldest first, at most 100, those with ``id > after``) as
soon as one exists (at once if one already does), 204 when ``timeout`` seconds pass
without one. Answered from the hub's memory when it holds what was asked, else from
the database; a ``timeout`` of 0 (or none) and ``POST`` are Django's (rooms.api.chat).
Deletions: the polling page re-reads the newest page (``after=0``) now and then and
drops what is gone (templates/static/vsync/chat.js).
"""

from __future__ import annotations

import asyncio
import math

from transports.admission import admit
from transports.asgi_http import Receive, Scope, Send, close_on_disconnect, query, respond, respond_error
from transports.hub import hub, respond_refusal
from transports.resume import BadVersion, parse_version

# rooms.api.chat's bound, so that one request gets the same answer from either server path.
MAX_TIMEOUT_S = 60.0


def wants_wait(scope: Scope) -> bool:
    """Whether this request is a waiting read (a GET with a timeout that is not 0): this module's."""
    if scope["method"] not in ("GET", "HEAD"):
        return False
    raw = query(scope).get("timeout")
    if raw is None:
        return False
    try:
        return float(raw) != 0.0
    except ValueError:
        return True  # refused here with the same 400 as Django's


async def app(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    params = query(scope)
    try:
        after = parse_version(params.get("after")) or 0
    except BadVersion:
        await respond_error(send, 400, "after must be a message id (an integer >= 0)", "after")
        return
    try:
        timeout = float(params.get("timeout", ""))
    except ValueError:
        timeout = math.nan
    if not (math.isfinite(timeout) and 0 <= timeout <= MAX_TIMEOUT_S):
        await respond_error(send, 400, f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT_S:.0f}",
                            "timeout")
        return
    try:
        admission = await admit(scope, slug, token_in_query=False)
        stream = await hub.attach_chat_poll(slug, after=after, admission=admission)
    except Exception as exc:
        if not await respond_refusal(send, slug, exc):
            raise
        return
    left = asyncio.ensure_future(close_on_disconnect(receive, lambda: None))
    try:
        if not stream.woken.done():
            await asyncio.wait((stream.woken, left), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(stream)
        gone = left.done()
        left.cancel()
    if stream.denied is not None:
        await respond_error(send, *stream.denied)
    elif stream.messages:
        # Each message's JSON was encoded once for every viewer; the answer only joins them.
        body = b'{"messages":[' + b",".join(frame.json.encode() for frame in stream.messages) + b"]}"
        await respond(send, 200, b"" if scope["method"] == "HEAD" else body)
    elif not gone:
        await respond(send, 204)
