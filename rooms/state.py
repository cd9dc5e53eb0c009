"""The room-state value object and the one pure transition function."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, TypedDict

# A command stamped further ahead of the server clock than this cannot come from a
# client whose clock is synchronised; accepting it would lock out every later
# command until real time caught up with the stamp.
FUTURE_GUARD_MS = 5_000.0

RATE_MIN = 0.25
RATE_MAX = 4.0

# CONTRACT v2: the queue holds at most this many items.
MAX_QUEUE_ITEMS = 100
QUEUE_COMMANDS = frozenset({"enqueue", "dequeue", "move", "next"})


@dataclass(frozen=True)
class Subtitle:
    """One subtitle track of the current media: a WebVTT file this server serves."""

    url: str
    label: str = ""
    lang: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "label": self.label, "lang": self.lang}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subtitle:
        return cls(url=data["url"], label=data.get("label") or "", lang=data.get("lang") or "")


@dataclass(frozen=True)
class Media:
    url: str
    title: str = ""
    duration: float | None = None
    source: str = "direct"
    thumbnail: str = ""  # an image URL; on the wire only when known
    subtitles: tuple[Subtitle, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "title": self.title, "duration": self.duration,
                                "source": self.source}
        if self.thumbnail:
            data["thumbnail"] = self.thumbnail
        data["subtitles"] = [track.to_dict() for track in self.subtitles]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Media:
        return cls(url=data["url"], title=data.get("title") or "", duration=data.get("duration"),
                   source=data.get("source") or "direct", thumbnail=data.get("thumbnail") or "",
                   subtitles=tuple(Subtitle.from_dict(track) for track in data.get("subtitles") or ()))


@dataclass(frozen=True)
class QueueItem:
    """Media waiting its turn. ``id`` comes from Room.next_queue_item_id: increasing, never reused."""

    id: int
    media: Media
    added_by: str | None
    # Where a resolved (youtube) item came from: its stream URL expires, and once it
    # plays the room re-resolves it from here. On the wire only when known.
    page_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "url": self.media.url, "title": self.media.title,
                                "duration": self.media.duration, "source": self.media.source,
                                "added_by": self.added_by}
        if self.media.thumbnail:
            data["thumbnail"] = self.media.thumbnail
        if self.page_url:
            data["page_url"] = self.page_url
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueItem:
        media = Media(url=data["url"], title=data.get("title") or "", duration=data.get("duration"),
                      source=data.get("source") or "direct", thumbnail=data.get("thumbnail") or "")
        return cls(id=data["id"], media=media, added_by=data.get("added_by"), page_url=data.get("page_url") or "")


@dataclass(frozen=True)
class RoomState:
    """One version of a room, exactly as the wire contract describes it."""

    room: str
    version: int
    playing: bool
    position: float
    anchor_ms: float
    rate: float
    media: Media
    changed_by: str | None
    changed_ms: float
    # The ordering key of the command that made this version: last writer wins by
    # (client_ms, client_id). Sent on the wire too, so clients can see it.
    client_ms: float = field(default=0.0)
    queue: tuple[QueueItem, ...] = ()

    @classmethod
    def initial(cls, *, room: str, media: Media, now_ms: float) -> RoomState:
        return cls(room=room, version=1, playing=False, position=0.0, anchor_ms=now_ms, rate=1.0,
                   media=media, changed_by=None, changed_ms=now_ms, client_ms=0.0)

    def position_at(self, t_ms: float) -> float:
        """The media position every viewer should show at server time ``t_ms``."""
        if self.playing and t_ms >= self.anchor_ms:
            position = self.position + self.rate * (t_ms - self.anchor_ms) / 1000.0
            if self.media.duration is not None:
                position = min(position, self.media.duration)
            return position
        return self.position

    def end_ms(self) -> float | None:
        """Server time at which this version plays to the end of its media; None when paused or unknown."""
        if not self.playing or self.media.duration is None or self.rate <= 0:
            return None
        return self.anchor_ms + max(0.0, self.media.duration - self.position) / self.rate * 1000.0

    @property
    def order_key(self) -> tuple[float, str]:
        return (self.client_ms, self.changed_by or "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "room": self.room,
            "version": self.version,
            "playing": self.playing,
            "position": self.position,
            "anchor_ms": self.anchor_ms,
            "rate": self.rate,
            "media": self.media.to_dict(),
            "changed_by": self.changed_by,
            "changed_ms": self.changed_ms,
            "client_ms": self.client_ms,
            "queue": [item.to_dict() for item in self.queue],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomState:
        return cls(room=data["room"], version=data["version"], playing=data["playing"],
                   position=data["position"], anchor_ms=data["anchor_ms"], rate=data["rate"],
                   media=Media.from_dict(data["media"]), changed_by=data.get("changed_by"),
                   changed_ms=data["changed_ms"], client_ms=data.get("client_ms", 0.0),
                   queue=tuple(QueueItem.from_dict(item) for item in data.get("queue") or ()))


@dataclass(frozen=True)
class Command:
    """A validated command. ``client_id`` is None for the server (admin actions)."""

    type: str
    client_id: str | None
    client_ms: float
    position: float | None = None
    rate: float | None = None
    url: str | None = None
    media: Media | None = None  # set once ``url`` is resolved
    # Queue commands: the item (for enqueue, the new item's id, given by the service),
    # the index to move it to, and for enqueue where a resolved item came from.
    item: int | None = None
    to: int | None = None
    page_url: str = ""

    @property
    def order_key(self) -> tuple[float, str]:
        return (self.client_ms, self.client_id or "")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "client_id": self.client_id, "client_ms": self.client_ms}
        if self.position is not None:
            data["position"] = self.position
        if self.rate is not None:
            data["rate"] = self.rate
        if self.url is not None:
            data["url"] = self.url
        if self.media is not None:
            data["media"] = self.media.to_dict()
        for name in ("item", "to"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.page_url:
            data["page_url"] = self.page_url
        return data


@dataclass(frozen=True)
class Rejected:
    """Why a command changed nothing. ``reason`` is ``stale`` or ``invalid``."""

    reason: str
    state: RoomState
    error: str = ""
    field: str | None = None


class InvalidCommand(ValueError):
    def __init__(self, error: str, field: str | None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


class NewVersion(TypedDict, total=False):
    """The fields every transition sets on the state it makes (queue edits keep ``client_ms``)."""

    version: int
    changed_by: str | None
    changed_ms: float
    client_ms: float



def apply(state: RoomState, command: Command, now_ms: float, *, start_lead_ms: float = 0.0) -> RoomState | Rejected:
    """Return the next version of ``state`` after ``command``, or why it was refused.

    ``now_ms`` is the server time of acceptance; an accepted ``play`` and a seek while
    playing take effect at ``now_ms + start_lead_ms`` so every viewer starts together.
    """
    if not math.isfinite(command.client_ms):
        return Rejected("invalid", state, "client_ms must be a finite number", "client_ms")
    if command.client_ms > now_ms + FUTURE_GUARD_MS:
        return Rejected("invalid", state, "client_ms is more than 5 s ahead of server time", "client_ms")
    if command.type in QUEUE_COMMANDS:
        # Applied in arrival order, never stale, and the stored ordering key is kept:
        # editing the queue must not make anybody's next playback command stale.
        queued = NewVersion(version=state.version + 1, changed_by=command.client_id, changed_ms=now_ms)
        if command.type == "enqueue":
            return _enqueue(state, command, queued)
        if command.type == "dequeue":
            index = _queue_index(state, command.item)
            if index is None:
                return Rejected("invalid", state, f"no queue item {command.item}", "item")
            return dataclasses.replace(state, queue=state.queue[:index] + state.queue[index + 1:], **queued)
        if command.type == "move":
            return _move(state, command, queued)
        if command.type == "next":
            if not state.queue:
                return Rejected("invalid", state, "the queue is empty", "item")
            return _start_first_item(state, now_ms, start_lead_ms, queued)
    if command.order_key <= state.order_key:
        return Rejected("stale", state, "a later action is already applied")

    if command.type in ("play", "pause", "seek") and not _valid_position(command.position):
        return Rejected("invalid", state, "position must be a finite number >= 0", "position")
    # v2: the stored ordering key never claims a moment later than the arrival, so a
    # client stamping ahead of the clock cannot make everybody's next command stale.
    common = NewVersion(version=state.version + 1, changed_by=command.client_id, changed_ms=now_ms,
                        client_ms=min(command.client_ms, now_ms))
    position = 0.0 if command.position is None else command.position  # checked above for play, pause, seek
    if command.type == "play":
        return dataclasses.replace(state, playing=True, position=position,
                                   anchor_ms=now_ms + start_lead_ms, **common)
    if command.type == "pause":
        return dataclasses.replace(state, playing=False, position=position, anchor_ms=now_ms, **common)
    if command.type == "seek":
        anchor_ms = now_ms + start_lead_ms if state.playing else now_ms
        return dataclasses.replace(state, position=position, anchor_ms=anchor_ms, **common)
    if command.type == "rate":
        if command.rate is None or not RATE_MIN <= command.rate <= RATE_MAX:
            return Rejected("invalid", state, f"rate must be between {RATE_MIN} and {RATE_MAX}", "rate")
        # Re-anchor at the moment of the change so the trajectory stays continuous.
        return dataclasses.replace(state, position=state.position_at(now_ms), anchor_ms=now_ms,
                                   rate=command.rate, **common)
    if command.type == "media":
        if command.media is None:
            return Rejected("invalid", state, "media is required", "url")
        # Everybody switches together: position 0, paused.
        return dataclasses.replace(state, media=command.media, playing=False, position=0.0,
                                   anchor_ms=now_ms, **common)
    raise AssertionError(f"unexpected command type {command.type!r}")


def refresh_media(state: RoomState, media: Media, now_ms: float) -> RoomState:
    """The same media at a new stream URL (the old one expired): a new version by the server
    that keeps the trajectory, so ``position_at(t)`` is unchanged for every ``t``.

    ``client_ms`` is kept: a refresh is not an action, and must not make a client's
    next command stale.
    """
    # The old duration is kept too: position_at clamps to it.
    return dataclasses.replace(state, media=dataclasses.replace(media, duration=state.media.duration,
                                                                subtitles=state.media.subtitles),
                               version=state.version + 1, changed_by=None, changed_ms=now_ms)


def reach_end(state: RoomState, now_ms: float, *, start_lead_ms: float = 0.0) -> RoomState | None:
    """The server's own version once a playing room has played its media to the end, or None before that.

    The first queue item starts from 0 with a scheduled start; with an empty queue the
    room pauses at the end. The ordering key moves to the end's moment: a command
    stamped before it was meant for the media that ended.
    """
    end_ms = state.end_ms()
    if end_ms is None or now_ms < end_ms:
        return None
    common = NewVersion(version=state.version + 1, changed_by=None, changed_ms=now_ms,
                        client_ms=max(min(end_ms, now_ms), state.client_ms))
    if state.queue:
        return _start_first_item(state, now_ms, start_lead_ms, common)
    assert state.media.duration is not None  # end_ms() is None without it
    return dataclasses.replace(state, playing=False, position=state.media.duration, anchor_ms=now_ms, **common)


def add_subtitles(state: RoomState, track: Subtitle, now_ms: float, *, author: str | None) -> RoomState:
    """The same media with one more subtitle track; the trajectory and ordering key are kept."""
    media = dataclasses.replace(state.media, subtitles=(*state.media.subtitles, track))
    return dataclasses.replace(state, media=media, version=state.version + 1, changed_by=author, changed_ms=now_ms)


def _enqueue(state: RoomState, command: Command, common: NewVersion) -> RoomState | Rejected:
    if command.media is None or command.item is None:
        return Rejected("invalid", state, "media is required", "url")
    if len(state.queue) >= MAX_QUEUE_ITEMS:
        return Rejected("invalid", state, f"the queue is full ({MAX_QUEUE_ITEMS} items)", "url")
    item = QueueItem(id=command.item, media=dataclasses.replace(command.media, subtitles=()),
                     added_by=command.client_id, page_url=command.page_url)
    return dataclasses.replace(state, queue=(*state.queue, item), **common)


def _move(state: RoomState, command: Command, common: NewVersion) -> RoomState | Rejected:
    index = _queue_index(state, command.item)
    if index is None:
        return Rejected("invalid", state, f"no queue item {command.item}", "item")
    if command.to is None:
        return Rejected("invalid", state, "to is required", "to")
    rest = state.queue[:index] + state.queue[index + 1:]
    to = min(max(command.to, 0), len(rest))  # CONTRACT: clamped to the queue's bounds
    return dataclasses.replace(state, queue=(*rest[:to], state.queue[index], *rest[to:]), **common)


def _start_first_item(state: RoomState, now_ms: float, start_lead_ms: float, common: NewVersion) -> RoomState:
    """The first queue item becomes the media at 0 (no subtitles): playing with a scheduled start
    if the room was playing, else paused."""
    first = state.queue[0]
    anchor_ms = now_ms + start_lead_ms if state.playing else now_ms
    return dataclasses.replace(state, media=dataclasses.replace(first.media, subtitles=()), queue=state.queue[1:],
                               position=0.0, anchor_ms=anchor_ms, **common)


def _queue_index(state: RoomState, item_id: int | None) -> int | None:
    for index, item in enumerate(state.queue):
        if item.id == item_id:
            return index
    return None


def _valid_position(position: float | None) -> bool:
    return position is not None and math.isfinite(position) and position >= 0
