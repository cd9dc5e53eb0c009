"""Ending connections that may no longer read their room: a kicked member's, and those a narrowed room refuses.

rooms.signals.member_ended and room_access_changed reach the hub of every process that
holds the room (transports.hub sends them through the channel layer); these decide which
of its connections end, and end them with the transport's own refusal (a WebSocket close
code 4000 + the HTTP status, an HTTP answer with that status). The hub then forgets them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from transports.admission import forget_room, recheck
from transports.streams import Stream

REMOVED = "you were removed from this room"


def end_member(slug: str, streams: Iterable[Stream], client_id: str, code: int) -> list[Stream]:
    """End every connection of ``client_id`` among ``streams`` (WebSocket close ``code``); the ones ended."""
    forget_room(slug)  # the member's next connection is asked anew, not admitted from memory
    ended = [stream for stream in streams if stream.client_id == client_id]
    for stream in ended:
        stream.end(code=code, status=code - 4000, error=REMOVED)
    return ended


async def end_refused(slug: str, streams: Callable[[], Collection[Stream]]) -> list[Stream]:
    """Ask rooms.access again for each connection of the room; end those it now refuses, and return them.

    ``streams()`` is asked twice: before the question, and after it for who is still there.
    """
    if not streams():
        return []
    denied = await recheck(slug, {(stream.token, stream.address) for stream in streams()})
    ended = []
    for stream in tuple(streams()):
        refusal = denied.get((stream.token, stream.address))
        if refusal is not None:
            stream.end(code=4000 + refusal.status, status=refusal.status, error=refusal.error)
            ended.append(stream)
    return ended
