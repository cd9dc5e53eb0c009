"""The room-state value object and the one pure transition function."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

# A command stamped further ahead of the server clock than this cannot come from a
# client whose clock is synchronised; accepting it would lock out every later
# command until real time caught up with the stamp.
FUTURE_GUARD_MS = 5_000.0

RATE_MIN = 0.25
RATE_MAX = 4.0


@dataclass(frozen=True)
class Media:
    url: str
    title: str = ""
    duration: float | None = None
    source: str = "direct"
    thumbnail: str = ""  # an image URL; on the wire only when known

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "title": self.title, "duration": self.duration,
                                "source": self.source}
        if self.thumbnail:
            data["thumbnail"] = self.thumbnail
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Media:
        return cls(url=data["url"], title=data.get("title") or "", duration=data.get("duration"),
                   source=data.get("source") or "direct", thumbnail=data.get("thumbnail") or "")


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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomState:
        return cls(room=data["room"], version=data["version"], playing=data["playing"],
                   position=data["position"], anchor_ms=data["anchor_ms"], rate=data["rate"],
                   media=Media.from_dict(data["media"]), changed_by=data.get("changed_by"),
                   changed_ms=data["changed_ms"], client_ms=data.get("client_ms", 0.0))


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


def apply(state: RoomState, command: Command, now_ms: float, *, start_lead_ms: float = 0.0) -> RoomState | Rejected:
    """Return the next version of ``state`` after ``command``, or why it was refused.

    ``now_ms`` is the server time of acceptance; an accepted ``play`` and a seek while
    playing take effect at ``now_ms + start_lead_ms`` so every viewer starts together.
    """
    if not math.isfinite(command.client_ms):
        return Rejected("invalid", state, "client_ms must be a finite number", "client_ms")
    if command.client_ms > now_ms + FUTURE_GUARD_MS:
        return Rejected("invalid", state, "client_ms is more than 5 s ahead of server time", "client_ms")
    if command.order_key <= state.order_key:
        return Rejected("stale", state, "a later action is already applied")

    if command.type in ("play", "pause", "seek") and not _valid_position(command.position):
        return Rejected("invalid", state, "position must be a finite number >= 0", "position")
    # v2: the stored ordering key never claims a moment later than the arrival, so a
    # client stamping ahead of the clock cannot make everybody's next command stale.
    common = dict(version=state.version + 1, changed_by=command.client_id, changed_ms=now_ms,
                  client_ms=min(command.client_ms, now_ms))
    if command.type == "play":
        return dataclasses.replace(state, playing=True, position=command.position,
                                   anchor_ms=now_ms + start_lead_ms, **common)
    if command.type == "pause":
        return dataclasses.replace(state, playing=False, position=command.position, anchor_ms=now_ms, **common)
    if command.type == "seek":
        anchor_ms = now_ms + start_lead_ms if state.playing else now_ms
        return dataclasses.replace(state, position=command.position, anchor_ms=anchor_ms, **common)
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
    return dataclasses.replace(state, media=dataclasses.replace(media, duration=state.media.duration),
                               version=state.version + 1, changed_by=None, changed_ms=now_ms)


def _valid_position(position: float | None) -> bool:
    return position is not None and math.isfinite(position) and position >= 0
