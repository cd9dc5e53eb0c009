"""The `wait` buffering policy: hold everyone for a buffering member, release together or on timeout."""

from __future__ import annotations

import pytest

from rooms.buffering import BUFFERING_GRACE_MS, room_buffering_check
from rooms.models import BufferingHold, Member, Room
from rooms.presence import PresenceReport, presence_record
from rooms.services import now_ms, room_apply_command
from rooms.state import Command

pytestmark = pytest.mark.django_db
T0 = now_ms()


@pytest.fixture
def room():
    # Server commands stamp real time, so each test's clock starts at its own real time
    # (at import time, a slow collection put T0 more than 5 s behind the server's stamps).
    global T0
    T0 = now_ms()
    Room.objects.filter(slug="demo").update(buffering_policy="wait", buffering_timeout_s=10)
    room_apply_command(slug="demo", command=Command(type="play", client_id="c-a", client_ms=T0 - 5_000,
                                                    position=0.0), at_ms=T0 - 5_000)
    return Room.objects.get(slug="demo")


def say(room, client_id, status, at_ms):
    report = PresenceReport(client_id=client_id, transport="poll", status=status, rtt_ms=10.0)
    presence_record(room=room, report=report, now_ms=at_ms)
    return room_buffering_check(slug=room.slug, now_ms=at_ms)


def state(room):
    room.refresh_from_db()
    return room.room_state


def test_a_short_stall_does_not_stop_the_room(room):
    say(room, "c-b", "buffering", T0)
    say(room, "c-a", "playing", T0 + BUFFERING_GRACE_MS / 2)
    assert state(room).playing


def test_a_long_stall_pauses_everyone_at_one_position(room):
    say(room, "c-b", "buffering", T0)
    paused = say(room, "c-a", "playing", T0 + BUFFERING_GRACE_MS)
    assert paused is not None and not paused.playing
    assert paused.changed_by is None
    assert state(room).playing is False


def test_the_room_resumes_together_when_nobody_buffers(room):
    say(room, "c-b", "buffering", T0)
    paused = say(room, "c-a", "playing", T0 + BUFFERING_GRACE_MS)
    resumed = say(room, "c-b", "paused", T0 + 3_000)
    assert resumed is not None and resumed.playing
    assert resumed.position == paused.position
    assert resumed.anchor_ms > resumed.changed_ms  # a scheduled start for everyone
    assert not BufferingHold.objects.exists()


def test_the_timeout_releases_the_room_while_the_buffering_member_is_silent(room):
    say(room, "c-b", "buffering", T0)
    say(room, "c-a", "playing", T0 + BUFFERING_GRACE_MS)
    assert say(room, "c-a", "paused", T0 + 5_000) is None  # still waiting
    resumed = say(room, "c-a", "paused", T0 + 10_500)
    assert resumed is not None and resumed.playing
    # The member who timed out does not stop the room again while it keeps buffering.
    assert say(room, "c-a", "playing", T0 + 13_000) is None
    assert state(room).playing


def test_a_persons_pause_during_a_hold_is_not_undone(room):
    say(room, "c-b", "buffering", T0)
    paused = say(room, "c-a", "playing", T0 + BUFFERING_GRACE_MS)
    room_apply_command(slug="demo", command=Command(type="pause", client_id="c-a", client_ms=paused.client_ms + 1,
                                                    position=paused.position), at_ms=T0 + 2_000)
    assert say(room, "c-b", "paused", T0 + 3_000) is None
    assert state(room).playing is False


def test_ignore_policy_never_stops_the_room(room):
    Room.objects.filter(slug="demo").update(buffering_policy="ignore")
    room.refresh_from_db()
    say(room, "c-b", "buffering", T0)
    say(room, "c-a", "playing", T0 + 5_000)
    assert state(room).playing
    assert Member.objects.get(client_id="c-b").status == "buffering"
