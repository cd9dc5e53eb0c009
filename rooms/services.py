"""Writes that must also publish: applying a command, creating a room, switching to an upload, settings."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction

from rooms.access import hash_token
from rooms.models import Room, RoomEvent
from rooms.names import slug_from_name
from rooms.presence import room_start_lead_ms
from rooms.signals import room_access_changed, room_state_changed
from rooms.state import Command, Media, Rejected, RoomState, apply, refresh_media


class ControlDenied(Exception):
    """The room's policy does not let this client control playback."""


def now_ms() -> float:
    return time.time() * 1000.0


def room_lock_for(*, slug: str, client_id: str | None) -> Room:
    """Room ``slug``'s row, locked for a command by ``client_id`` (None: the server), inside a transaction.

    Raises Room.DoesNotExist, and ControlDenied for a client in a room an admin locked.
    """
    # SQLite takes its write lock at BEGIN (transaction_mode IMMEDIATE); PostgreSQL
    # locks the row here. Either way, writers to one room queue up.
    room = Room.objects.select_for_update().get(slug=slug)
    if client_id is not None and room.control == Room.Control.LOCKED:
        raise ControlDenied("this room is locked: only admins control playback")
    return room


def room_apply_command(*, slug: str, command: Command, at_ms: float | None = None, media_page_url: str = "",
                       media_expires_ms: float | None = None, order_last: bool = False) -> RoomState | Rejected:
    """Apply ``command`` to room ``slug`` atomically and publish the new version on commit.

    An accepted ``media`` command also records where its media was resolved from and
    when its stream URL expires. ``order_last``: the command's ``client_ms`` becomes the
    accept time, after everything applied so far (server commands, uploads without a
    stamp). Raises Room.DoesNotExist and ControlDenied; returns the new state or a Rejected.
    """
    with transaction.atomic():
        room = room_lock_for(slug=slug, client_id=command.client_id)
        accepted_ms = now_ms() if at_ms is None else at_ms
        if order_last:
            # Decided under the row lock: nothing can slip in between the read and the write.
            command = dataclasses.replace(command, client_ms=max(accepted_ms, room.room_state.client_ms + 0.001))
        result = apply(room.room_state, command, accepted_ms, start_lead_ms=room_start_lead_ms(room))
        if isinstance(result, Rejected):
            return result
        update_fields: list[str] = []
        if command.type == "media":
            room.media_page_url, room.media_expires_ms = media_page_url, media_expires_ms
            update_fields += ["media_page_url", "media_expires_ms"]
        room_save_version(room, result, command=command.to_dict(), author=command.client_id,
                          accepted_ms=accepted_ms, update_fields=update_fields)
    return result


def room_save_version(room: Room, state: RoomState, *, command: dict[str, Any], author: str | None,
                      accepted_ms: float, update_fields: Sequence[str] = ()) -> None:
    """Save ``state`` as ``room``'s new version, log it as a RoomEvent and publish it on commit.

    For the services only (commands, queue, subtitles, refresh), inside their transaction
    with the room row locked: a version a rollback undoes is never published.
    """
    room.set_room_state(state)
    room.save(update_fields=["state", "version", "playing", *update_fields])
    RoomEvent.objects.create(room=room, version=state.version, command=command, author=author,
                             accepted_ms=accepted_ms, state=state.to_dict())
    transaction.on_commit(partial(room_state_changed.send, sender=Room, state=state))


def room_server_command(*, slug: str, type: str, **fields: object) -> RoomState | Rejected:
    """A command from the server itself (admin actions): it orders after every client."""
    # Server commands must win over anything already applied (order_last).
    command = Command(type=type, client_id=None, client_ms=0.0, **fields)  # type: ignore[arg-type]
    return room_apply_command(slug=slug, command=command, order_last=True)


def room_refresh_media(*, slug: str, page_url: str, media: Media, expires_ms: float | None,
                       replaces_url: str | None = None) -> RoomState | None:
    """Swap in a re-resolved stream URL for the media resolved from ``page_url``, keeping the position.

    Returns the new version, or None when the room meanwhile switched to other media
    (or, with ``replaces_url``, to another stream URL) or the URL did not change.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=slug)
        current = room.room_state
        if room.media_page_url != page_url or (replaces_url is not None and current.media.url != replaces_url):
            return None
        room.media_expires_ms = expires_ms
        if media.url == current.media.url:
            room.save(update_fields=["media_expires_ms"])
            return None
        accepted_ms = now_ms()
        result = refresh_media(current, media, accepted_ms)
        room_save_version(room, result, command={"type": "refresh_media", "url": media.url, "page_url": page_url},
                          author=None, accepted_ms=accepted_ms, update_fields=["media_expires_ms"])
    return result


def room_create(*, name: str, media: Media, slug: str | None = None, media_page_url: str = "",
                media_expires_ms: float | None = None, owner_token: str | None = None, password: str | None = None,
                listed: bool = True, control: str = Room.Control.OPEN) -> Room:
    """Create a room with a unique slug derived from its name, at version 1.

    ``owner_token`` (kept only as its SHA-256) makes whoever presents it the owner;
    without one the room has no owner and v1 rules apply to it.
    """
    owner_token_hash = hash_token(owner_token) if owner_token else ""
    password_hash = make_password(password) if password else ""
    base = slug or slug_from_name(name)  # [a-z0-9-] only: "movie_night" -> "movie-night"
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else f"{base}-{attempt}"
        if Room.objects.filter(slug=candidate).exists():
            continue
        state = RoomState.initial(room=candidate, media=media, now_ms=now_ms())
        try:
            with transaction.atomic():
                room = Room(slug=candidate, name=name, media_page_url=media_page_url,
                            media_expires_ms=media_expires_ms, owner_token_hash=owner_token_hash,
                            password_hash=password_hash, listed=listed, control=control)
                room.set_room_state(state)
                room.save()
                RoomEvent.objects.create(room=room, version=1, command={"type": "create"}, author=None,
                                         accepted_ms=state.changed_ms, state=state.to_dict())
        except IntegrityError:
            continue  # another process took the slug between the check and the insert
        return room
    raise RuntimeError("no free slug")


def with_media(command: Command, media: Media) -> Command:
    return dataclasses.replace(command, media=media)


def room_switch_to_upload(*, slug: str, media: Media, client_id: str | None,
                          client_ms: float | None) -> RoomState | Rejected:
    """Play an uploaded file in room ``slug``: a ``media`` command like any other.

    Without ``client_ms`` the switch orders after everything applied while the file was
    uploading (it can take minutes). Raises Room.DoesNotExist and ControlDenied.
    """
    command = Command(type="media", client_id=client_id, client_ms=client_ms or 0.0, url=media.url, media=media)
    return room_apply_command(slug=slug, command=command, order_last=client_ms is None)


def room_policy_change(*, slug: str, buffering_policy: str | None = None,
                       buffering_timeout_s: int | None = None) -> Room:
    """The v1 buffering policy: what happens while a member buffers, and for how long. No new version."""
    return room_settings_change(slug=slug, buffering_policy=buffering_policy, buffering_timeout_s=buffering_timeout_s)


UNCHANGED: Any = object()


def room_settings_change(*, slug: str, name: str | None = None, password: Any = UNCHANGED, listed: bool | None = None,
                         control: str | None = None, buffering_policy: str | None = None,
                         buffering_timeout_s: int | None = None) -> Room:
    """Change a room's settings (None leaves a field as it is; ``password=None`` removes the password).

    Settings are not part of the room state, so no version is made. A new password
    narrows who may read the room: after commit ``room_access_changed`` lets the hub
    end the connections that no longer pass.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=slug)
        changes = {"name": name, "listed": listed, "control": control, "buffering_policy": buffering_policy,
                   "buffering_timeout_s": buffering_timeout_s}
        fields = [field for field, value in changes.items() if value is not None]
        for field in fields:
            setattr(room, field, changes[field])
        if password is not UNCHANGED:
            room.password_hash = make_password(password) if password else ""
            fields.append("password_hash")
            if password:
                transaction.on_commit(partial(room_access_changed.send, sender=Room, room=slug))
        if fields:
            room.save(update_fields=fields)
    return room


def room_settings(room: Room) -> dict[str, Any]:
    """A room's settings as the API shows them: whether there is a password, never the password."""
    return {"name": room.name, "listed": room.listed, "control": room.control, "has_password": bool(room.password_hash),
            "buffering": room.buffering_policy, "buffering_timeout_s": room.buffering_timeout_s,
            "owned": bool(room.owner_token_hash)}
