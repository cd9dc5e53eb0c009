"""A room's chat as one process delivers it: a log, in id order, none twice.

Each committed message (rooms.signals.chat_message_posted, then ``room.chat`` through the
channel layer to every process) reaches the hub once per process, in whatever order the
layer brings it. ``ChatLog`` decides what may be handed out now: a message that arrives
ahead of its predecessor (two processes posting at once) waits for it, and a gap that
stays open (a lost layer message) is read from the database (``read_gap``). The newest
CHAT_TAIL messages stay in memory, so that polls and resumes that are nearly caught up
cost no database read. The hub (transports.hub) hands what this returns to the streams.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from channels.db import database_sync_to_async

from rooms.chat import PAGE_SIZE, chat_messages_after
from rooms.models import Room
from transports.encoding import ChatFrame

# Chat messages kept in memory per room: a poll or a resume at most this far behind is
# answered without the database (CONTRACT v2 pages are 100 messages).
CHAT_TAIL = PAGE_SIZE
# A message that arrives before its predecessor waits this long for it before the gap is
# read from the database: the layer delivers two processes' messages in either order, a
# few milliseconds apart; a lost message is found here (or by the reconciler) instead.
CHAT_GAP_WAIT_S = 0.5


class ChatGone(LookupError):
    """The room was deleted while its history was being read."""


class ChatLog:
    """One room's delivered chat: the position, the newest messages, those that came early."""

    __slots__ = ("chat_id", "early", "filling", "floor", "tail")

    def __init__(self) -> None:
        self.chat_id = 0  # the newest message delivered here; all before it were too
        self.tail: collections.deque[ChatFrame] = collections.deque(maxlen=CHAT_TAIL)
        self.floor = 0  # the tail holds every (undeleted) message after this id
        self.early: dict[int, ChatFrame] = {}  # arrived before their predecessors
        self.filling = False  # a read of the gap from the database is on its way

    def after(self, after: int) -> list[ChatFrame] | None:
        """The messages after ``after`` from memory (as rooms.chat.chat_messages_after), or None if not all here."""
        if after < self.floor:
            return None
        return [frame for frame in self.tail if frame.id > after][:PAGE_SIZE]

    def arrive(self, frame: ChatFrame) -> list[ChatFrame]:
        """The messages to hand out now, in id order: ``frame`` and those it unblocks; [] if it must wait (or is old).

        When it must wait, ``needs_fill()`` says whether the caller should start reading the gap.
        """
        if frame.id <= self.chat_id:
            return []
        if frame.id > self.chat_id + 1:
            self.early[frame.id] = frame  # its predecessor is on its way, or lost
            return []
        return [self._record(frame), *self._unblocked()]

    def needs_fill(self) -> bool:
        """True once per open gap: messages wait for a predecessor and nobody reads it yet (marks it read)."""
        if not self.early or self.filling:
            return False
        self.filling = True
        return True

    def start_at(self, seq: int) -> list[ChatFrame]:
        """The database's chat position when the room was joined: what is before it is history, not delivered here."""
        if seq <= self.chat_id:
            return []
        self.chat_id = self.floor = seq
        self._drop_early_up_to(seq)
        return self._unblocked()

    def filled(self, seq: int, messages: list[dict[str, Any]], slug: str) -> list[ChatFrame]:
        """What a read of the gap brought (the position ``seq``, the messages up to it), to hand out in order."""
        frames = []
        for message in messages:
            if message["id"] > self.chat_id:
                early = self.early.pop(message["id"], None)
                frames.append(self._record(early if early is not None else ChatFrame.from_dict(slug, message)))
        self.chat_id = max(self.chat_id, seq)  # ids missing up to seq were deleted meanwhile
        self._drop_early_up_to(self.chat_id)
        return [*frames, *self._unblocked()]

    def delete(self, message_id: int) -> None:
        if any(frame.id == message_id for frame in self.tail):
            self.tail = collections.deque([frame for frame in self.tail if frame.id != message_id], maxlen=CHAT_TAIL)
        self.early.pop(message_id, None)

    def _record(self, frame: ChatFrame) -> ChatFrame:
        self.chat_id = frame.id
        if len(self.tail) == self.tail.maxlen:
            self.floor = self.tail[0].id
        self.tail.append(frame)
        return frame

    def _unblocked(self) -> list[ChatFrame]:
        frames = []
        while self.chat_id + 1 in self.early:
            frames.append(self._record(self.early.pop(self.chat_id + 1)))
        return frames

    def _drop_early_up_to(self, seq: int) -> None:
        for early in [early for early in self.early if early <= seq]:
            del self.early[early]


async def backlog(slug: str, log: ChatLog, after: int) -> tuple[list[ChatFrame], bool]:
    """The messages after ``after`` for a resuming stream, and whether they are all it missed."""
    frames = log.after(after) if after > 0 else None
    if frames is not None:
        return frames, True
    messages = await read_chat_after(slug, after)
    # From the newest page (after 0) nothing older is owed; otherwise a full page may not be all.
    return [ChatFrame.from_dict(slug, message) for message in messages], after == 0 or len(messages) < PAGE_SIZE


async def page_after(slug: str, log: ChatLog, after: int) -> list[ChatFrame]:
    """The page after ``after`` (as GET .../chat), from memory when it is all there."""
    frames = log.after(after)
    if frames is not None:
        return frames
    return [ChatFrame.from_dict(slug, message) for message in await read_chat_after(slug, after)]


async def read_gap(slug: str, log: ChatLog, *, wait: bool) -> tuple[int, list[dict[str, Any]]] | None:
    """The database's chat position and the messages after the log's; None if the gap closed while waiting."""
    if wait:
        await asyncio.sleep(CHAT_GAP_WAIT_S)
        if not log.early:
            return None  # the predecessor came through the layer meanwhile
    gap: tuple[int, list[dict[str, Any]]] = await _read_chat_tail(slug, log.chat_id)
    return gap


@database_sync_to_async
def read_chat_after(slug: str, after: int) -> list[dict[str, Any]]:
    try:
        return chat_messages_after(slug=slug, after=after)
    except Room.DoesNotExist:
        raise ChatGone(slug) from None


@database_sync_to_async
def _read_chat_tail(slug: str, after: int) -> tuple[int, list[dict[str, Any]]]:
    """The room's chat position and the (undeleted) messages after ``after`` up to it, oldest first."""
    seq = Room.objects.filter(slug=slug).values_list("chat_seq", flat=True).first() or 0
    messages = chat_messages_after(slug=slug, after=after, limit=min(seq - after, 1_000)) if seq > after else []
    return seq, [message for message in messages if message["id"] <= seq]


@database_sync_to_async
def read_chat_seqs(slugs: list[str]) -> dict[str, int]:
    """Each room's chat position in the database (the reconciler's check for lost layer messages)."""
    if not slugs:
        return {}
    return dict(Room.objects.filter(slug__in=slugs).values_list("slug", "chat_seq"))
