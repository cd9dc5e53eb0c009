"""The `wait` buffering policy: pause everyone at one position while a member buffers.

Evaluated lazily on every presence report. Every viewer reports every second or
two, so the timeout releases the room even when the buffering member goes silent.
"""

from __future__ import annotations

from django.db import transaction

from rooms.models import BufferingHold, Member, Room
from rooms.presence import active_members
from rooms.services import room_server_command
from rooms.state import RoomState

# Every scheduled start and every seek stalls a decoder for a moment; only a stall
# longer than this is worth stopping the whole room for.
BUFFERING_GRACE_MS = 1_000.0


def stalled_members(room: Room, now_ms: float) -> list[Member]:
    """Members buffering long enough to wait for, and not so long that the room gave up on them."""
    timeout_ms = room.buffering_timeout_s * 1000.0
    buffering = active_members(room).filter(status=Member.Status.BUFFERING, buffering_since_ms__isnull=False)
    return [m for m in buffering if BUFFERING_GRACE_MS <= now_ms - m.buffering_since_ms < timeout_ms]


def room_buffering_check(*, slug: str, now_ms: float) -> RoomState | None:
    """Hold or release the room as its policy and its members' buffering say; the new state if changed."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=slug)
        state = room.room_state
        hold = BufferingHold.objects.filter(room=room).first()
        waiting = room.buffering_policy == Room.Buffering.WAIT
        stalled = stalled_members(room, now_ms) if waiting else []
        if hold is not None:
            if state.version != hold.version:
                hold.delete()  # somebody acted since the hold: their action stands
                return None
            timed_out = now_ms - hold.since_ms >= room.buffering_timeout_s * 1000.0
            if stalled and not timed_out:
                return None
            hold.delete()
            result = room_server_command(slug=slug, type="play", position=hold.position)
            return result if isinstance(result, RoomState) else None
        if not (stalled and state.playing and now_ms >= state.anchor_ms):
            return None
        position = state.position_at(now_ms)
        result = room_server_command(slug=slug, type="pause", position=position)
        if not isinstance(result, RoomState):
            return None
        BufferingHold.objects.create(room=room, version=result.version, position=position, since_ms=now_ms)
        return result
