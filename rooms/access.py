"""Who may read and write a room: member tokens, roles, passwords and bans, decided in one place.

Every endpoint of a room, over every transport, asks ``room_access`` first; what it
answers is transport-neutral (``Access`` or ``AccessDenied``), and each transport
maps a denial once (HTTP status, WebSocket close code).

Tokens: the member token from /join (stored as its SHA-256 in Member.token_hash) or
the room's owner token itself (Room.owner_token_hash). Either arrives as
``Authorization: Bearer``, the room's cookie (``member_cookie_name``) or ``?token=``;
the transport picks it out and passes it here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db.models import Q

from rooms.models import Ban, Member, Room

# One cookie per room: a viewer can be in several rooms at once, each with its own token.
MEMBER_COOKIE_PREFIX = "vsync_member_"


class AccessDenied(Exception):
    """``status``: 401 (no valid token where one is needed), 403 (banned, or not allowed), 404 (no room)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass(frozen=True)
class Access:
    """What one request may do in one room. ``client_id`` and ``role`` are None for an anonymous client
    (``client_id`` is None too for the bare owner token, which names no member)."""

    room: str
    client_id: str | None
    role: str | None
    can_control: bool
    # The room has an owner: v2 rules (owner-only policy) apply; rooms from v1 have none.
    owned: bool = False
    has_password: bool = False
    # Where the request came from: the per-address limits key on it.
    address: str | None = None

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def moderates(self) -> bool:
        return self.role in ("owner", "host")


def new_secret() -> str:
    """A token of 256 bits, URL-safe (the contract asks for at least 128)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def member_cookie_name(slug: str) -> str:
    return f"{MEMBER_COOKIE_PREFIX}{slug}"


def owner_token_valid(room: Room, token: str | None) -> bool:
    return bool(token and room.owner_token_hash and hmac.compare_digest(hash_token(token), room.owner_token_hash))


def banned(room: Room, *, client_id: str | None = None, token_hash: str | None = None,
           address: str | None = None) -> bool:
    """True when any of the three matches one of the room's bans."""
    if not (client_id or token_hash or address):
        return False
    match = Q(pk__in=[])
    if client_id:
        match |= Q(client_id=client_id)
    if token_hash:
        match |= Q(token_hash=token_hash)
    if address:
        match |= Q(address=address)
    return Ban.objects.filter(room=room).filter(match).exists()


def room_access(*, slug: str, token: str | None, address: str | None) -> Access:
    """Decide what a client holding ``token`` (or none) from ``address`` may do in room ``slug``.

    Raises AccessDenied. Sync: touches the database.
    """
    room = Room.objects.filter(slug=slug).only("id", "slug", "control", "password_hash", "owner_token_hash").first()
    if room is None:
        raise AccessDenied(404, f"no room {slug!r}")
    client_id: str | None = None
    role: str | None = None
    token_hash = hash_token(token) if token else None
    if token:
        if owner_token_valid(room, token):
            role = Member.Role.OWNER
        else:
            member = Member.objects.filter(room=room, token_hash=token_hash).only("client_id", "role").first()
            if member is None:
                # Even in an open room: the client must learn that its token is dead and join again.
                raise AccessDenied(401, "this token is not valid for this room (unknown or revoked): join again")
            client_id, role = member.client_id, member.role
    # An address ban keeps out whoever has no member token there (the banned person's
    # was revoked); members who joined from the same address (a shared NAT) stay.
    if role != Member.Role.OWNER and banned(room, client_id=client_id, token_hash=token_hash,
                                            address=address if role is None else None):
        raise AccessDenied(403, "you are banned from this room")
    if room.password_hash and role is None:
        raise AccessDenied(401, "this room has a password: join it first (POST /api/rooms/{slug}/join)")
    return Access(room=slug, client_id=client_id, role=role, can_control=_can_control(room.control, role),
                  owned=bool(room.owner_token_hash), has_password=bool(room.password_hash), address=address)


def _can_control(control: str, role: str | None) -> bool:
    if control == Room.Control.OPEN:
        # Any member; and, where there is no password, anybody (as in v1). A room with a
        # password never gets here without a member's role.
        return True
    if control == Room.Control.HOSTS:
        return role in (Member.Role.OWNER, Member.Role.HOST)
    return False  # locked: the server and the admin only
