"""A command entering through any transport: validate, limit, apply. Written once for all."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rooms.buffering import room_buffering_check
from rooms.commands import command_from_data
from rooms.media.refresh import ensure_refresher
from rooms.media.sources import resolve_media
from rooms.models import Room
from rooms.presence import parse_report, presence_record, room_members, room_start_lead_ms
from rooms.queue import room_queue_command
from rooms.ratelimit import command_limiter
from rooms.services import ControlDenied, now_ms, room_apply_command, with_media
from rooms.state import QUEUE_COMMANDS, InvalidCommand, Rejected


@dataclass(frozen=True)
class Outcome:
    """The HTTP status and body of a command's answer; WebSocket acks reuse the body."""

    status: int
    body: dict[str, Any]


def submit_command(slug: str, data: Any) -> Outcome:
    """Run one decoded command body against room ``slug`` (sync: touches the database)."""
    if not Room.objects.filter(slug=slug).exists():
        return Outcome(404, {"error": f"no room {slug!r}"})
    try:
        command = command_from_data(data)
        if not command_limiter.allow(slug, command.client_id or ""):
            return Outcome(429, {"error": "too many commands from this client_id; slow down"})
        resolved = None
        if command.type in ("media", "enqueue"):
            resolved = resolve_media(command.url or "")
            if resolved.expires_ms is not None:
                ensure_refresher()
            command = with_media(command, resolved.media)
        if command.type in QUEUE_COMMANDS:
            if resolved is not None and resolved.refreshable:
                command = dataclasses.replace(command, page_url=resolved.page_url)
            result = room_queue_command(slug=slug, command=command)
        else:
            result = room_apply_command(slug=slug, command=command,
                                        media_page_url=resolved.page_url if resolved else "",
                                        media_expires_ms=resolved.expires_ms if resolved else None)
    except InvalidCommand as exc:
        return Outcome(400, {"error": exc.error, "field": exc.field})
    except Room.DoesNotExist:
        return Outcome(404, {"error": f"no room {slug!r}"})
    except ControlDenied as exc:
        return Outcome(403, {"error": str(exc)})
    if isinstance(result, Rejected):
        if result.reason == "stale":
            return Outcome(409, {"accepted": False, "reason": "stale", "state": result.state.to_dict()})
        return Outcome(400, {"error": result.error, "field": result.field})
    return Outcome(200, {"accepted": True, "state": result.to_dict()})


def submit_presence(slug: str, data: Any) -> Outcome:
    """A viewer's presence report (name, transport, round trip, status, drift), any transport."""
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return Outcome(404, {"error": f"no room {slug!r}"})
    try:
        report = parse_report(data)
    except InvalidCommand as exc:
        return Outcome(400, {"error": exc.error, "field": exc.field})
    at_ms = now_ms()
    presence_record(room=room, report=report, now_ms=at_ms)
    room_buffering_check(slug=slug, now_ms=at_ms)
    room.refresh_from_db(fields=["buffering_policy", "buffering_timeout_s", "start_lead_ms"])
    return Outcome(200, members_body(room))


def members_body(room: Room) -> dict[str, Any]:
    """The member list as every presence answer carries it."""
    return {"members": room_members(room), "start_lead_ms": room_start_lead_ms(room),
            "buffering_policy": room.buffering_policy, "buffering_timeout_s": room.buffering_timeout_s}
