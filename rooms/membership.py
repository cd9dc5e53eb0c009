"""Who belongs to a room: joining, roles, kicks and bans, and the admin's ownership transfer.

Secrets are kept only as SHA-256 (member and owner tokens) or Django password hashes;
a member token is shown once, in the answer to /join (and its cookie).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from django.contrib.auth.hashers import check_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from rooms.access import Access, banned, hash_token, new_secret, owner_token_valid
from rooms.commands import validated_or_invalid
from rooms.conf import conf
from rooms.limits import ADDRESS_JOIN_FAILURES, address_limit
from rooms.models import Ban, Member, Room
from rooms.presence import MEMBER_AWAY_S, room_full
from rooms.results import Result, accepted, limited, not_found, refused
from rooms.signals import member_ended, room_access_changed

ClientId = Annotated[str, Field(min_length=1, max_length=64)]
# The WebSocket close code a kicked member's connections end with (CONTRACT v2).
KICKED_CLOSE_CODE = 4403


Body = TypeVar("Body", bound=BaseModel)


class Join(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    client_id: ClientId
    name: Annotated[str, Field(max_length=40)] = ""
    password: Annotated[str, Field(max_length=256)] | None = None
    owner_token: Annotated[str, Field(max_length=256)] | None = None


class RoleChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    client_id: ClientId
    role: Literal["host", "viewer"]


class Kick(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    client_id: ClientId
    ban: bool = False


def join_submit(*, slug: str, data: Any, token: str | None, address: str | None) -> Result:
    """``/join``: a member token (payload ``member_token``, ``role``, ``client_id``), or why not.

    ``token`` is the one the client already holds (cookie or Bearer), if any: it proves
    that a rejoining owner or host is the same person.
    """
    join = validated_or_invalid(Join, data)
    if isinstance(join, Result):
        return join
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return not_found(slug)
    held = hash_token(token) if token else None
    # The owner is never locked out, not even by a ban on an address it shares.
    is_owner = bool(join.owner_token) and owner_token_valid(room, join.owner_token)
    if not is_owner and banned(room, client_id=join.client_id, token_hash=held, address=address):
        return refused("denied", "you are banned from this room")
    if (wait := _failures_wait(address)) is not None:
        return limited("too many wrong passwords or owner tokens from this address; wait", wait)
    role: str = Member.Role.VIEWER
    if join.owner_token:
        if not owner_token_valid(room, join.owner_token):
            return _failed(address, "wrong owner token", "owner_token")
        role = Member.Role.OWNER
    elif room.password_hash and not check_password(join.password or "", room.password_hash):
        return _failed(address, "wrong password" if join.password else "this room has a password", "password")
    member_token = new_secret()
    try:
        with transaction.atomic():
            member = Member.objects.select_for_update().filter(room=room, client_id=join.client_id).first()
            if member is None:
                if room_full(room):
                    return limited("this room is full", 60.0)
                # Listed as away until its first presence report: joining is not watching.
                member = Member(room=room, client_id=join.client_id, transport="",
                                last_seen=timezone.now() - timedelta(seconds=MEMBER_AWAY_S + 1))
            elif role != Member.Role.OWNER and member.role != Member.Role.VIEWER and member.token_hash != held:
                # client_ids are public (member lists, changed_by): only the holder keeps a role.
                return refused("denied", "this client_id belongs to a member with a role: send its token")
            elif role != Member.Role.OWNER:
                role = member.role
            member.role, member.token_hash, member.address = role, hash_token(member_token), address
            if join.name.strip():
                member.name = join.name.strip()
            member.save()
    except IntegrityError:
        return refused("denied", "another join with this client_id happened at the same moment; try again")
    return accepted(payload={"member_token": member_token, "role": role, "client_id": join.client_id})


def _failures_wait(address: str | None) -> float | None:
    if not conf.ADDRESS_LIMITS or not address:
        return None
    return ADDRESS_JOIN_FAILURES.wait_s(address)


def _failed(address: str | None, error: str, field: str) -> Result:
    address_limit(ADDRESS_JOIN_FAILURES, address)  # guessing costs: 20 wrong tries a minute
    return refused("denied", error, field)



def _permitted_body(schema: type[Body], data: Any, *, permitted: bool, refusal: str) -> Body | Result:
    """A moderation request's body, checked only once the caller may make the request at all."""
    if not permitted:
        return refused("denied", refusal)
    return validated_or_invalid(schema, data)


def roles_submit(*, slug: str, access: Access, data: Any) -> Result:
    """``/roles``, owner only: make a member a host, or a viewer again."""
    change = _permitted_body(RoleChange, data, permitted=access.is_owner, refusal="only the room's owner grants roles")
    if isinstance(change, Result):
        return change
    member = Member.objects.filter(room__slug=slug, client_id=change.client_id).exclude(token_hash="").first()
    if member is None:
        return refused("not_found", f"no member {change.client_id!r} has joined this room", "client_id")
    if member.role == Member.Role.OWNER:
        return refused("denied", "the owner's role does not change (the admin transfers ownership)", "client_id")
    Member.objects.filter(pk=member.pk).update(role=change.role)
    return accepted(payload={"client_id": change.client_id, "role": change.role})


def kick_submit(*, slug: str, access: Access, data: Any) -> Result:
    """``/kick``, owner or host: revoke a member's token and end its connections; ``ban`` keeps it out."""
    kick = _permitted_body(Kick, data, permitted=access.moderates, refusal="only the owner and hosts kick members")
    if isinstance(kick, Result):
        return kick
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(slug=slug).first()
        if room is None:
            return not_found(slug)
        member = Member.objects.filter(room=room, client_id=kick.client_id).first()
        if member is None and not kick.ban:
            return refused("not_found", f"no member {kick.client_id!r} in this room", "client_id")
        if member is not None and member.role == Member.Role.OWNER:
            return refused("denied", "nobody can kick the owner", "client_id")
        if kick.ban:
            Ban.objects.create(room=room, client_id=kick.client_id, token_hash=member.token_hash if member else "",
                               address=member.address if member else None, banned_by=access.client_id or "owner")
        if member is not None:
            member.delete()  # the token dies with the row: its next request gets 401
        transaction.on_commit(partial(member_ended.send, sender=Room, room=slug, client_id=kick.client_id,
                                      code=KICKED_CLOSE_CODE))
        if room.password_hash:
            transaction.on_commit(partial(room_access_changed.send, sender=Room, room=slug))
    return accepted(payload={"client_id": kick.client_id, "kicked": member is not None, "banned": kick.ban})


def room_transfer_ownership(*, slug: str) -> str:
    """A new owner token for room ``slug`` (the admin shows it once); the old owner's members become viewers."""
    token = new_secret()
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=slug)
        room.owner_token_hash = hash_token(token)
        room.save(update_fields=["owner_token_hash"])
        Member.objects.filter(room=room, role=Member.Role.OWNER).update(role=Member.Role.VIEWER)
    return token


def room_clear_bans(*, slug: str) -> int:
    """Lift every ban of room ``slug``; how many there were."""
    deleted, _ = Ban.objects.filter(room__slug=slug).delete()
    return deleted
