"""What enters a room from any transport: commands, presence reports, uploads and policy changes.

One path for each: access (``rooms.access``), validation, limits, then the service.
The answer is a transport-neutral ``Result``; HTTP maps it in
``rooms.api.http.result_response``, the WebSocket in ``ack_fields`` below.
Sync: everything here touches the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from rooms.access import Access, AccessDenied, room_access
from rooms.buffering import room_buffering_check
from rooms.commands import command_from_data, validated_or_invalid
from rooms.conf import conf
from rooms.limits import (
    ADDRESS_COMMANDS,
    ADDRESS_MEDIA_RESOLUTIONS,
    ADDRESS_PRESENCE,
    ADDRESS_RESOLUTIONS_IN_FLIGHT,
    CLIENT_COMMANDS,
    CLIENT_PRESENCE,
    TokenBuckets,
    address_limit,
)
from rooms.media.refresh import ensure_refresher
from rooms.media.sources import ResolvedMedia, is_local_media, resolve_media
from rooms.media.ytdlp import ResolverBusy
from rooms.models import Ban, Member, Room
from rooms.presence import (
    PresenceReport,
    parse_report,
    presence_record,
    room_member_total,
    room_members,
    room_start_lead_ms,
)
from rooms.queue import room_queue_command
from rooms.results import Result, accepted, invalid, limited, not_found, refused
from rooms.services import (
    ControlDenied,
    now_ms,
    room_apply_command,
    room_policy_change,
    room_settings,
    room_settings_change,
    room_switch_to_upload,
    with_media,
)
from rooms.state import QUEUE_COMMANDS, Command, InvalidCommand, Media, Rejected, RoomState
from vsync.observability import command_answered, media_resolved, rate_limited

DENIAL_KINDS = {401: "unauthorized", 403: "denied", 404: "not_found"}


def denial(exc: AccessDenied) -> Result:
    return refused(DENIAL_KINDS.get(exc.status, "denied"), exc.error)  # type: ignore[arg-type]


def access_for(*, slug: str, access: Access | None, token: str | None, address: str | None) -> Access | Result:
    """The caller's Access (HTTP passes the one its decorator got; the WebSocket asks per message)."""
    if access is not None:
        return access
    try:
        return room_access(slug=slug, token=token, address=address)
    except AccessDenied as exc:
        return denial(exc)


def command_submit(*, slug: str, data: Any, access: Access | None = None, token: str | None = None,
                   address: str | None = None) -> Result:
    """Run one decoded command body against room ``slug``; counted by outcome for /metrics."""
    result = _command_submit(slug=slug, data=data, access=access, token=token, address=address)
    command_answered(result.kind)
    return result


def _command_submit(*, slug: str, data: Any, access: Access | None, token: str | None,
                    address: str | None) -> Result:
    admitted = _admit(slug=slug, data=data, access=access, token=token, address=address, what="commands",
                      parse=command_from_data, address_bucket=ADDRESS_COMMANDS, client_bucket=CLIENT_COMMANDS)
    if isinstance(admitted, Result):
        return admitted
    allowed, command = admitted
    try:
        resolved: ResolvedMedia | None = None
        if command.type in ("media", "enqueue"):
            resolution = resolve_for(command.url or "", allowed.address)
            if isinstance(resolution, Result):
                return resolution
            resolved = resolution
            if resolved.expires_ms is not None:
                ensure_refresher()
            command = with_media(command, resolved.media)
        if command.type in QUEUE_COMMANDS:
            if resolved is not None and resolved.refreshable:
                command = dataclasses.replace(command, page_url=resolved.page_url)
            return state_result(room_queue_command(slug=slug, command=command))
        return state_result(room_apply_command(slug=slug, command=command,
                                               media_page_url=resolved.page_url if resolved else "",
                                               media_expires_ms=resolved.expires_ms if resolved else None))
    except InvalidCommand as exc:
        return invalid(exc.error, exc.field)
    except Room.DoesNotExist:
        return not_found(slug)
    except ControlDenied as exc:
        return refused("denied", str(exc))


def resolve_for(url: str, address: str | None) -> ResolvedMedia | Result:
    """Resolve ``url`` for a client at ``address``, within its per-address resolution limits (429)."""
    if is_local_media(url):
        return resolve_media(url)  # this server's own files: no network, no pool thread
    if (wait := address_limit(ADDRESS_MEDIA_RESOLUTIONS, address)) is not None:
        rate_limited("media_resolution")
        return limited("too many media resolutions from this address; try again later", wait)
    if not address or not conf.ADDRESS_LIMITS:
        return _resolve_counted(url)
    with ADDRESS_RESOLUTIONS_IN_FLIGHT.slot(address) as granted:
        if not granted:
            rate_limited("media_resolution")
            return limited("this address already has media resolving; wait for it to finish", 1.0)
        return _resolve_counted(url)


def _resolve_counted(url: str) -> ResolvedMedia:
    try:
        resolved = resolve_media(url)
    except InvalidCommand:
        media_resolved("invalid")
        raise
    except ResolverBusy:  # 503 + Retry-After (vsync.security)
        media_resolved("busy")
        raise
    media_resolved("ok")
    return resolved


def upload_submit(*, slug: str, access: Access, media: Media, client_id: str | None,
                  client_ms: float | None) -> Result:
    """Switch room ``slug`` to an uploaded file, under the same rules as a ``media`` command."""
    if (refusal := author_refusal(access, client_id)) is not None:
        return refusal
    if client_id is not None and (wait := CLIENT_COMMANDS.take((slug, client_id))) is not None:
        return limited("too many commands from this client_id; slow down", wait)
    try:
        return state_result(room_switch_to_upload(slug=slug, media=media, client_id=client_id, client_ms=client_ms))
    except Room.DoesNotExist:
        return not_found(slug)
    except ControlDenied as exc:
        return refused("denied", str(exc))


def author_refusal(access: Access, client_id: str | None) -> Result | None:
    """Why this client may not act as ``client_id`` in the room now, or None."""
    if not access.can_control:
        return refused("denied", control_error(access))
    if client_id is None or access.client_id == client_id:
        return None
    if access.client_id is not None:
        return refused("denied", f"this member token belongs to client_id {access.client_id!r}", "client_id")
    if access.role is None and Member.objects.filter(room__slug=access.room, client_id=client_id).exclude(
            token_hash="").exists():
        return refused("denied", "this client_id joined the room: send its member token", "client_id")
    if Ban.objects.filter(room__slug=access.room, client_id=client_id).exists():
        return refused("denied", "you are banned from this room")
    return None


def control_error(access: Access) -> str:
    if access.can_control:
        return ""
    room = Room.objects.filter(slug=access.room).values_list("control", flat=True).first()
    if room == Room.Control.HOSTS:
        return "only the owner and hosts control playback in this room"
    return "this room is locked: only admins control playback"


Parsed = TypeVar("Parsed", Command, PresenceReport)


def _admit(*, slug: str, data: Any, access: Access | None, token: str | None, address: str | None, what: str,
           parse: Callable[[Any], Parsed], address_bucket: TokenBuckets, client_bucket: TokenBuckets,
           as_controller: bool = True) -> tuple[Access, Parsed] | Result:
    """What every message from a client passes before its service: access, the address's limit,
    the schema, who it may speak for (``as_controller``: and whether it may control), the client's limit."""
    allowed = access_for(slug=slug, access=access, token=token, address=address)
    if isinstance(allowed, Result):
        return allowed
    if (wait := address_limit(address_bucket, allowed.address)) is not None:
        return limited(f"too many {what} from this address; slow down", wait)
    try:
        parsed = parse(data)
    except InvalidCommand as exc:
        return invalid(exc.error, exc.field)
    author = allowed if as_controller else dataclasses.replace(allowed, can_control=True)
    if (refusal := author_refusal(author, parsed.client_id)) is not None:
        return refusal
    if (wait := client_bucket.take((slug, parsed.client_id or ""))) is not None:
        return limited(f"too many {what} from this client_id; slow down", wait)
    return allowed, parsed


def state_result(result: RoomState | Rejected) -> Result:
    if isinstance(result, Rejected):
        if result.reason == "stale":
            return Result("stale", state=result.state, error=result.error)
        return invalid(result.error, result.field)
    return accepted(result)


def presence_submit(*, slug: str, data: Any, access: Access | None = None, token: str | None = None,
                    address: str | None = None) -> Result:
    """A viewer's presence report (name, transport, round trip, status, drift): the same access as reads."""
    # Presence is not control: a viewer in a hosts-only room reports like anyone.
    admitted = _admit(slug=slug, data=data, access=access, token=token, address=address, what="presence reports",
                      parse=parse_report, address_bucket=ADDRESS_PRESENCE, client_bucket=CLIENT_PRESENCE,
                      as_controller=False)
    if isinstance(admitted, Result):
        return admitted
    report = admitted[1]
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        return not_found(slug)
    at_ms = now_ms()
    if presence_record(room=room, report=report, now_ms=at_ms) is None:
        return limited("this room is full", 60.0)
    room_buffering_check(slug=slug, now_ms=at_ms)
    room.refresh_from_db(fields=["buffering_policy", "buffering_timeout_s", "start_lead_ms"])
    return accepted(payload=members_body(room))


def members_body(room: Room) -> dict[str, Any]:
    """The member list as every presence answer carries it (the first 100; ``total`` counts all)."""
    return {"members": room_members(room), "total": room_member_total(room),
            "start_lead_ms": room_start_lead_ms(room), "buffering_policy": room.buffering_policy,
            "buffering_timeout_s": room.buffering_timeout_s,
            # Pages learn here that the room turned hosts-only (their controls go disabled).
            "control": room.control}


class PolicyChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    buffering_policy: Literal["wait", "ignore"] | None = None
    buffering_timeout_s: Annotated[int, Field(ge=1, le=120)] | None = None


class SettingsChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    listed: bool | None = None
    control: Literal["open", "hosts"] | None = None
    buffering: Literal["wait", "ignore"] | None = None
    buffering_timeout_s: Annotated[int, Field(ge=1, le=120)] | None = None


def policy_submit(*, slug: str, access: Access, data: Any) -> Result:
    """v1's ``/policy``: anybody in a room without an owner, the owner alone in one that has one."""
    if (refusal := _settings_refusal(slug, access, owner_only=access.owned)) is not None:
        return refusal
    change = validated_or_invalid(PolicyChange, data)
    if isinstance(change, Result):
        return change
    room = room_policy_change(slug=slug, buffering_policy=change.buffering_policy,
                              buffering_timeout_s=change.buffering_timeout_s)
    return accepted(payload={"buffering_policy": room.buffering_policy,
                             "buffering_timeout_s": room.buffering_timeout_s})


def settings_submit(*, slug: str, access: Access, data: Any) -> Result:
    """The owner's ``/settings``: name, password (null removes it), listed, control, buffering."""
    if (refusal := _settings_refusal(slug, access, owner_only=True)) is not None:
        return refusal
    change = validated_or_invalid(SettingsChange, data)
    if isinstance(change, Result):
        return change
    fields = change.model_dump(exclude_unset=True)
    name = fields.get("name")
    if name is not None and not name.strip():
        return invalid("name must not be blank", "name")
    if fields.get("control") is not None and Room.objects.filter(slug=slug, control=Room.Control.LOCKED).exists():
        return refused("denied", "this room is locked by an admin: its control cannot change")
    extra = {"password": fields["password"]} if "password" in fields else {}
    room = room_settings_change(slug=slug, name=name.strip() if name else None, listed=fields.get("listed"),
                                control=fields.get("control"), buffering_policy=fields.get("buffering"),
                                buffering_timeout_s=fields.get("buffering_timeout_s"), **extra)
    return accepted(payload=room_settings(room))


def _settings_refusal(slug: str, access: Access, *, owner_only: bool) -> Result | None:
    if owner_only and not access.is_owner:
        return refused("denied", "only the room's owner changes its settings")
    if Room.objects.filter(slug=slug, control=Room.Control.LOCKED).exists() and not owner_only:
        return refused("denied", "this room is locked: only admins change its policy")
    return None


def ack_fields(result: Result) -> dict[str, Any]:
    """The WebSocket ack's fields for ``result`` (the transport adds ``type`` and ``ref``)."""
    fields: dict[str, Any] = {"accepted": result.accepted}
    if not result.accepted:
        fields["reason"] = result.kind
    if result.error and not result.accepted:
        fields["error"] = result.error
    if result.field is not None:
        fields["field"] = result.field
    if result.state is not None:
        fields["state"] = result.state.to_dict()
    if result.payload is not None:
        fields.update(result.payload)
    return fields

