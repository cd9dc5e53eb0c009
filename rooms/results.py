"""What a write through the service layer came to, whatever transport carried it.

Each transport maps a ``Result`` once: HTTP in ``rooms.api.http.result_response``,
the WebSocket ack in ``rooms.intake.ack_fields``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rooms.state import RoomState

Kind = Literal["accepted", "stale", "invalid", "denied", "unauthorized", "not_found", "limited", "too_large",
               "failed"]


@dataclass(frozen=True)
class Result:
    """``state``: the new version (accepted) or the current one (stale). ``payload``: an accepted
    answer that is not a state (the member list, a room's settings). ``retry_after_s``: limited."""

    kind: Kind
    state: RoomState | None = None
    error: str = ""
    field: str | None = None
    payload: dict[str, Any] | None = None
    retry_after_s: float | None = None

    @property
    def accepted(self) -> bool:
        return self.kind == "accepted"


def accepted(state: RoomState | None = None, payload: dict[str, Any] | None = None) -> Result:
    return Result("accepted", state=state, payload=payload)


def invalid(error: str, field: str | None) -> Result:
    return Result("invalid", error=error, field=field)


def refused(kind: Kind, error: str, field: str | None = None) -> Result:
    return Result(kind, error=error, field=field)


def limited(error: str, retry_after_s: float) -> Result:
    return Result("limited", error=error, retry_after_s=retry_after_s)


def not_found(slug: str) -> Result:
    return Result("not_found", error=f"no room {slug!r}")
