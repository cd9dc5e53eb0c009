"""Who is in a room: viewers' presence reports, the member list, and the start lead they imply."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import Count, F, FloatField, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from rooms.commands import validated
from rooms.models import START_LEAD_MAX_MS, START_LEAD_MIN_MS, Member, Room
from rooms.names import clean_name

# Viewers report every 1 to 2 s; three missed reports is no longer a blip.
MEMBER_AWAY_S = 6
# Long enough to survive a server restart or a laptop lid without losing one's
# place in the list, short enough that closed tabs leave the lobby count soon.
MEMBER_GONE_S = 60
# The scheduled start must outlast delivery to the slowest member and leave it time
# to seek there before the start: its round trip covers the one-way trip with room
# to spare; the margin covers a short-polling member's poll interval (250 ms) and a
# seek (about 100 ms on the demo). 300 ms left the short-polling page seeking past
# the start in the e2e test, 100 ms each way.
START_LEAD_MARGIN_MS = 300
# A page that does not report its start-up latency is assumed to start this fast (a
# desktop browser on the demo), and no page's report is believed beyond the cap: a
# phone-class CPU at 4x slowdown measured 85-156 ms seeks and starts up to 300 ms late.
STARTUP_DEFAULT_MS = 100.0
STARTUP_CAP_MS = 1_000.0
# A round trip above this is a stalled measurement (or a member lying), not a network:
# it must not push every play more than a second into the future.
RTT_CAP_MS = 1_000.0
# Rows per room, and rows per member list: a script inventing client_ids must not grow
# the table (every presence answer carries the list) without bound.
MAX_MEMBERS_PER_ROOM = 200
MEMBER_LIST_MAX = 100
# Who is listed first: the people who can act on the room.
ROLE_ORDER = {Member.Role.OWNER: 0, Member.Role.HOST: 1, Member.Role.VIEWER: 2}

Finite = Annotated[float, Field(allow_inf_nan=False)]


class PresenceReport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    client_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=40)] = ""
    transport: Literal["poll", "longpoll", "sse", "ws"]
    rtt_ms: Annotated[Finite, Field(ge=0)] | None = None
    startup_ms: Annotated[Finite, Field(ge=0)] | None = None
    status: Literal["playing", "paused", "buffering", "away"]
    drift_ms: Finite | None = None


def parse_report(data: Any) -> PresenceReport:
    """Validate a decoded presence body, or raise InvalidCommand naming the field."""
    return validated(PresenceReport, data)


def room_full(room: Room) -> bool:
    """No room for one more member row: at MAX_MEMBERS_PER_ROOM after forgetting those gone."""
    members = Member.objects.filter(room=room)
    if members.count() < MAX_MEMBERS_PER_ROOM:
        return False
    forget_gone_members(room)
    return members.count() >= MAX_MEMBERS_PER_ROOM


def forget_gone_members(room: Room) -> None:
    """Presence-only rows go once gone; joined viewers too, but only to make room (their token
    then answers 401 and the page joins again). Owners and hosts stay."""
    gone = timezone.now() - timedelta(seconds=MEMBER_GONE_S)
    Member.objects.filter(room=room, last_seen__lt=gone, token_hash="").delete()
    members = Member.objects.filter(room=room)
    excess = members.count() - MAX_MEMBERS_PER_ROOM + 1
    if excess > 0:
        oldest = (members.filter(last_seen__lt=gone, role=Member.Role.VIEWER)
                  .order_by("last_seen").values_list("pk", flat=True)[:excess])
        Member.objects.filter(pk__in=list(oldest)).delete()


def presence_record(*, room: Room, report: PresenceReport, now_ms: float) -> Member | None:
    """Store one report; a member's buffering run keeps the time it began. None: the room is full."""
    for _attempt in range(3):
        member = Member.objects.filter(room=room, client_id=report.client_id).first()
        if member is None:
            if room_full(room):
                return None
            member = Member(room=room, client_id=report.client_id)
        try:
            with transaction.atomic():
                return _record(member, room, report, now_ms)
        except IntegrityError:
            continue  # a concurrent first report created the row: update it instead
    raise RuntimeError("member row kept changing under us")


def _record(member: Member, room: Room, report: PresenceReport, now_ms: float) -> Member:
    buffering = report.status == Member.Status.BUFFERING.value
    if not buffering:
        member.buffering_since_ms = None
    elif member.buffering_since_ms is None:
        member.buffering_since_ms = now_ms
    member.name = clean_name(report.name, 40)  # no BEL, ESC, NUL or U+202E (rooms.names)
    member.transport = report.transport
    member.rtt_ms = min(report.rtt_ms, RTT_CAP_MS) if report.rtt_ms is not None else None
    member.startup_ms = min(report.startup_ms, STARTUP_CAP_MS) if report.startup_ms is not None else None
    member.status = report.status
    member.drift_ms = report.drift_ms
    member.last_seen = timezone.now()
    member.save()
    # Presence-only rows leave once gone; a joined member keeps its token and role.
    Member.objects.filter(room=room, token_hash="",
                          last_seen__lt=timezone.now() - timedelta(seconds=MEMBER_GONE_S)).delete()
    return member


def active_members(room: Room) -> Any:
    return Member.objects.filter(room=room, last_seen__gte=timezone.now() - timedelta(seconds=MEMBER_AWAY_S))


def listed_members(room: Room) -> Any:
    """Those who joined (until kicked) and those who reported within MEMBER_GONE_S."""
    gone = timezone.now() - timedelta(seconds=MEMBER_GONE_S)
    return Member.objects.filter(room=room).filter(Q(last_seen__gte=gone) | ~Q(token_hash=""))


def room_members(room: Room, limit: int = MEMBER_LIST_MAX) -> list[dict[str, Any]]:
    """The first ``limit`` members (owner and hosts first), with `away` for those who stopped reporting."""
    away_before = timezone.now() - timedelta(seconds=MEMBER_AWAY_S)
    members = sorted(listed_members(room), key=lambda m: (ROLE_ORDER.get(m.role, 3), m.name, m.client_id))
    return [
        {"client_id": m.client_id, "name": m.name, "role": m.role, "transport": m.transport or None,
         "status": Member.Status.AWAY if m.last_seen < away_before else m.status,
         "rtt_ms": m.rtt_ms, "drift_ms": m.drift_ms, "last_seen_ms": m.last_seen.timestamp() * 1000.0}
        for m in members[:limit]
    ]


def room_member_total(room: Room) -> int:
    total: int = listed_members(room).count()
    return total


def room_start_lead_ms(room: Room) -> int:
    """How far ahead a play is scheduled: the slowest active member's round trip and start-up, plus a margin.

    With nobody reporting, the room's configured lead applies.
    """
    needed = Max(F("rtt_ms") + Coalesce(F("startup_ms"), Value(STARTUP_DEFAULT_MS), output_field=FloatField()))
    slowest = active_members(room).filter(rtt_ms__isnull=False).aggregate(slowest=needed)["slowest"]
    if slowest is None:
        return int(room.start_lead_ms)
    lead = math.ceil(float(slowest) + START_LEAD_MARGIN_MS)
    return max(START_LEAD_MIN_MS, min(START_LEAD_MAX_MS, lead))


def room_member_counts(slugs: list[str]) -> dict[str, int]:
    """Members currently present per room slug (rooms with nobody are absent)."""
    since = timezone.now() - timedelta(seconds=MEMBER_AWAY_S)
    rows = (Room.objects.filter(slug__in=slugs)
            .annotate(present=Count("members", filter=Q(members__last_seen__gte=since)))
            .values_list("slug", "present"))
    return {slug: present for slug, present in rows if present}
