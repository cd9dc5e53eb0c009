"""Who may open a connection to a room: rooms.access asked once per connection, the per-address cap.

Every push endpoint (``/state``, ``/poll``, ``/events``, ``/ws``) admits its client here
first. A denial is transport-neutral (``Refused``: an HTTP status and a WebSocket close
code); each transport maps it once.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import reset_queries

from rooms.access import Access, AccessDenied, room_access
from transports.asgi_http import Scope, Send, client_address, member_token, respond
from vsync.security import DATABASE_RETRY_AFTER_S, is_database_down

# A WebSocket is closed right after the handshake with 4000 + the HTTP status it would have had.
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NO_SUCH_ROOM, CLOSE_TOO_MANY = 4401, 4403, 4404, 4429
DATABASE_DOWN = "the database is not answering; try again in a moment"


class Refused(Exception):
    """A connection the server will not hold: ``status`` over HTTP, ``close_code`` on a WebSocket."""

    def __init__(self, status: int, error: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.retry_after_s = status, error, retry_after_s

    @property
    def close_code(self) -> int:
        return 4000 + self.status


def database_refusal(exc: BaseException) -> Refused | None:
    """A database that does not answer, as a refusal (503 with Retry-After, WebSocket 4503); None for anything else.

    Anything else is a bug and stays one (a 500 and a traceback in the log).
    """
    if is_database_down(exc):
        return Refused(503, DATABASE_DOWN, retry_after_s=DATABASE_RETRY_AFTER_S)
    return None


@dataclass(frozen=True)
class Admission:
    """An admitted client: what rooms.access granted, with the token and address it was granted for."""

    access: Access
    token: str | None
    address: str | None

    @property
    def client_id(self) -> str | None:
        return self.access.client_id


# A long or short poll is a new request every time, and a viewer polls again right after
# each answer: rooms.access's yes is kept this long per (room, token, address), so that a
# poll costs no database read (short polling is served from the hub's memory). Without it,
# 1,000 long pollers re-polling after each version meant 1,000 queries through Django's one
# sync thread, and the lab's probe saw 1,138 of 15,000 versions arrive (uvicorn; daphne
# 3,800). It is forgotten at once when a member is ended or the room's access changes
# (``forget_room``, called by the hub in every process, through the channel layer); the
# time limit only bounds a change whose message the layer lost. A refusal is never kept.
ACCESS_CACHE_S = 10.0
ACCESS_CACHE_MAX = 10_000
_admitted: dict[tuple[str, str | None, str | None], tuple[float, Access]] = {}
_asking: dict[tuple[str, str | None, str | None], asyncio.Future[Access]] = {}
_generation: dict[str, int] = {}  # per room, +1 on every forget_room


async def admit(scope: Scope, slug: str, *, token_in_query: bool) -> Admission:
    """Ask rooms.access about this client; raise Refused (401/403/404) if it may not read the room."""
    token = member_token(scope, slug, from_query=token_in_query)
    address = client_address(scope)
    key = (slug, token, address)
    kept = _admitted.get(key)
    if kept is not None and kept[0] > time.monotonic():
        return Admission(access=kept[1], token=token, address=address)
    # One question in flight per key: when a kept answer expires, the pollers sharing it
    # (one address, no token) would otherwise all ask at once and queue in the sync thread.
    generation = _generation.get(slug, 0)
    asking = _asking.get(key)
    if asking is None:
        asking = _asking[key] = asyncio.ensure_future(check(slug=slug, token=token, address=address))
        asking.add_done_callback(lambda done: _asking.pop(key) if _asking.get(key) is done else None)
    try:
        access = await asyncio.shield(asking)
        if _generation.get(slug, 0) != generation:  # asked before the room's access changed: ask anew
            return Admission(access=await check(slug=slug, token=token, address=address), token=token,
                             address=address)
    except AccessDenied as denied:
        raise Refused(denied.status, denied.error) from None
    now = time.monotonic()
    if len(_admitted) >= ACCESS_CACHE_MAX:
        for old in [old for old, (until, _) in _admitted.items() if until <= now]:
            del _admitted[old]
        if len(_admitted) >= ACCESS_CACHE_MAX:
            _admitted.clear()
    _admitted[key] = (now + ACCESS_CACHE_S, access)
    return Admission(access=access, token=token, address=address)


def forget_room(slug: str) -> None:
    """Ask rooms.access again for the room's next connections (a member ended, access narrowed)."""
    _generation[slug] = _generation.get(slug, 0) + 1
    for key in [key for key in _admitted if key[0] == slug]:
        del _admitted[key]
    for key in [key for key in _asking if key[0] == slug]:
        del _asking[key]  # an answer on its way may predate the change: not shared any more


@database_sync_to_async
def check(*, slug: str, token: str | None, address: str | None) -> Access:
    # Django empties its DEBUG query log when a request starts (request_started); these raw
    # ASGI endpoints send no such signal, so without this the log kept up to 9,000 queries
    # (about 4.5 KiB per SSE viewer under daphne in the lab, measured with loadtests.probe).
    reset_queries()
    return room_access(slug=slug, token=token, address=address)


@database_sync_to_async
def recheck(slug: str, clients: set[tuple[str | None, str | None]]) -> dict[tuple[str | None, str | None],
                                                                           AccessDenied]:
    """Ask rooms.access again for each (token, address); the denials, in one thread hop."""
    reset_queries()  # as in check()
    denied = {}
    for token, address in clients:
        try:
            room_access(slug=slug, token=token, address=address)
        except AccessDenied as exc:
            denied[(token, address)] = exc
    return denied


async def respond_refused(send: Send, refused: Refused) -> None:
    """The HTTP answer to a refusal: its status, ``{"error"}``, and ``Retry-After`` when there is one."""
    headers = [(b"retry-after", b"%d" % refused.retry_after_s)] if refused.retry_after_s is not None else []
    await respond(send, refused.status, json.dumps({"error": refused.error}).encode(), headers=headers)


def connection_cap() -> int | None:
    """Open SSE streams, long polls and WebSockets allowed per address; None when the limits are off."""
    if not getattr(settings, "VSYNC_ADDRESS_LIMITS", True):
        return None
    return int(getattr(settings, "VSYNC_MAX_CONNECTIONS_PER_ADDRESS", 1000))
