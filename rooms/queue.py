"""The queue's writes: enqueue, dequeue, move and next, and the server's own step at the end of the media.

The transitions are pure (``rooms.state.apply`` and ``reach_end``); this module
gives each one its place in a transaction: the room row locked, an enqueued item's
id taken from ``Room.next_queue_item_id``, the event logged and the version
published on commit.
"""

from __future__ import annotations

import dataclasses

from django.db import transaction

from rooms.media.sources import stream_expiry_ms
from rooms.models import Room
from rooms.presence import room_start_lead_ms
from rooms.results import Result, accepted, invalid, not_found, refused
from rooms.services import ControlDenied, now_ms, room_lock_for, room_save_version
from rooms.state import QUEUE_COMMANDS, Command, Media, QueueItem, Rejected, RoomState, apply, reach_end


def room_queue_command(*, slug: str, command: Command, at_ms: float | None = None) -> RoomState | Rejected:
    """Apply one queue command (enqueue with its media resolved, dequeue, move, next) to room ``slug``.

    Raises Room.DoesNotExist and ControlDenied; returns the new state or a Rejected.
    """
    if command.type not in QUEUE_COMMANDS:
        raise ValueError(f"not a queue command: {command.type!r}")
    with transaction.atomic():
        room = room_lock_for(slug=slug, client_id=command.client_id)
        accepted_ms = now_ms() if at_ms is None else at_ms
        if command.type == "enqueue":
            # Taken under the row lock, so two enqueues never share an id; a refused one wastes none.
            command = dataclasses.replace(command, item=room.next_queue_item_id)
        current = room.room_state
        result = apply(current, command, accepted_ms, start_lead_ms=room_start_lead_ms(room))
        if isinstance(result, Rejected):
            return result
        update_fields: list[str] = []
        if command.type == "enqueue":
            room.next_queue_item_id += 1
            update_fields.append("next_queue_item_id")
        elif command.type == "next":
            update_fields += _record_media_origin(room, current.queue[0], accepted_ms)
        room_save_version(room, result, command=command.to_dict(), author=command.client_id,
                          accepted_ms=accepted_ms, update_fields=update_fields)
    return result


def upload_enqueue(*, slug: str, media: Media, client_id: str | None) -> Result:
    """An uploaded file goes to the end of the queue (the upload form's ``queue=1``) instead of playing now.

    The caller has checked that this client may control the room.
    """
    command = Command(type="enqueue", client_id=client_id, client_ms=0.0, url=media.url, media=media)
    try:
        result = room_queue_command(slug=slug, command=command)
    except Room.DoesNotExist:
        return not_found(slug)
    except ControlDenied as exc:
        return refused("denied", str(exc))
    if isinstance(result, Rejected):
        return invalid(result.error, result.field)
    return accepted(result)


def room_advance_at_end(*, slug: str, version: int, at_ms: float | None = None) -> RoomState | None:
    """If room ``slug`` is still at ``version`` and has played to its end, take the server's step.

    The version check under the row lock makes this safe to call from every process at
    once: the first one advances, the others find a newer version and do nothing.
    Returns the new state, or None when nothing was due.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(slug=slug).first()
        if room is None or room.version != version:
            return None
        accepted_ms = now_ms() if at_ms is None else at_ms
        current = room.room_state
        result = reach_end(current, accepted_ms, start_lead_ms=room_start_lead_ms(room))
        if result is None:
            return None
        update_fields: list[str] = []
        if current.queue and result.queue != current.queue:
            update_fields += _record_media_origin(room, current.queue[0], accepted_ms)
        room_save_version(room, result, command={"type": "end_of_media", "version": version}, author=None,
                          accepted_ms=accepted_ms, update_fields=update_fields)
    return result


def _record_media_origin(room: Room, item: QueueItem, at_ms: float) -> list[str]:
    """The room now plays ``item``: remember where it was resolved from, so an expiring stream
    URL is re-resolved as for a ``media`` command (rooms.media.refresh)."""
    refreshable = bool(item.page_url) and item.media.source == "youtube"
    room.media_page_url = item.page_url if refreshable else ""
    room.media_expires_ms = stream_expiry_ms(item.media.url, at_ms) if refreshable else None
    return ["media_page_url", "media_expires_ms"]

