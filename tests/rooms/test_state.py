"""The pure transition function: every command type, ordering, and every bound."""

from __future__ import annotations

import math

import pytest

from rooms.state import FUTURE_GUARD_MS, Command, Media, Rejected, RoomState, apply

NOW = 1_000_000_000.0
LEAD = 300.0
DEMO = Media(url="/media/demo.webm", title="Demo", duration=60.0, source="demo")


def initial() -> RoomState:
    return RoomState.initial(room="r", media=DEMO, now_ms=NOW - 10_000)


def cmd(type: str, client_ms: float = NOW - 50, client_id: str = "c-a", **fields) -> Command:
    return Command(type=type, client_id=client_id, client_ms=client_ms, **fields)


def accepted(state: RoomState, command: Command, now_ms: float = NOW) -> RoomState:
    result = apply(state, command, now_ms, start_lead_ms=LEAD)
    assert isinstance(result, RoomState), result
    return result


def test_play_is_scheduled_at_accept_time_plus_start_lead():
    state = accepted(initial(), cmd("play", position=12.5))
    assert state.playing
    assert state.position == 12.5
    assert state.anchor_ms == NOW + LEAD
    assert state.version == 2
    assert state.changed_by == "c-a"
    assert state.changed_ms == NOW


def test_position_holds_until_the_scheduled_anchor_then_advances_at_rate():
    state = accepted(initial(), cmd("play", position=10.0))
    assert state.position_at(NOW) == 10.0
    assert state.position_at(NOW + LEAD + 2_000) == pytest.approx(12.0)


def test_pause_freezes_at_the_given_position_now():
    playing = accepted(initial(), cmd("play", position=1.0))
    state = accepted(playing, cmd("pause", client_ms=NOW, position=3.25), now_ms=NOW + 10)
    assert not state.playing
    assert state.position == 3.25
    assert state.position_at(NOW + 99_999) == 3.25


def test_seek_while_paused_moves_position_and_stays_paused():
    state = accepted(initial(), cmd("seek", position=42.0))
    assert not state.playing
    assert state.position == 42.0
    assert state.anchor_ms == NOW


def test_seek_while_playing_keeps_playing_and_is_scheduled():
    playing = accepted(initial(), cmd("play", position=0.0))
    state = accepted(playing, cmd("seek", client_ms=NOW, position=30.0), now_ms=NOW + 1_000)
    assert state.playing
    assert state.position == 30.0
    assert state.anchor_ms == NOW + 1_000 + LEAD


def test_rate_change_keeps_the_trajectory_continuous():
    playing = accepted(initial(), cmd("play", position=0.0))
    change_at = NOW + LEAD + 4_000
    before = playing.position_at(change_at)
    state = accepted(playing, cmd("rate", client_ms=NOW, rate=2.0), now_ms=change_at)
    assert state.rate == 2.0
    assert state.position_at(change_at) == pytest.approx(before)
    assert state.position_at(change_at + 1_000) == pytest.approx(before + 2.0)


def test_media_switches_everyone_to_zero_paused():
    playing = accepted(initial(), cmd("play", position=20.0))
    other = Media(url="https://example.org/a.webm", title="a", duration=None, source="direct")
    state = accepted(playing, cmd("media", client_ms=NOW, url=other.url, media=other), now_ms=NOW + 5)
    assert state.media == other
    assert not state.playing
    assert state.position == 0.0


def test_media_without_resolved_media_is_invalid():
    result = apply(initial(), cmd("media", url="https://example.org/a.webm"), NOW)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid"


def test_stale_play_is_rejected_with_the_current_state():
    newer = accepted(initial(), cmd("pause", client_ms=NOW - 10, position=5.0))
    result = apply(newer, cmd("play", client_ms=NOW - 20, position=1.0), NOW, start_lead_ms=LEAD)
    assert isinstance(result, Rejected)
    assert result.reason == "stale"
    assert result.state == newer


def test_stale_command_of_another_type_is_rejected_too():
    newer = accepted(initial(), cmd("seek", client_ms=NOW - 10, position=5.0))
    result = apply(newer, cmd("rate", client_ms=NOW - 20, rate=2.0), NOW)
    assert isinstance(result, Rejected) and result.reason == "stale"


def test_tie_on_client_ms_is_won_by_the_greater_client_id():
    first = accepted(initial(), cmd("seek", client_ms=NOW - 10, client_id="c-b", position=1.0))
    lower = apply(first, cmd("seek", client_ms=NOW - 10, client_id="c-a", position=2.0), NOW)
    higher = apply(first, cmd("seek", client_ms=NOW - 10, client_id="c-c", position=3.0), NOW)
    assert isinstance(lower, Rejected) and lower.reason == "stale"
    assert isinstance(higher, RoomState) and higher.position == 3.0


def test_the_same_command_delivered_twice_is_applied_once():
    command = cmd("seek", position=7.0)
    once = accepted(initial(), command)
    again = apply(once, command, NOW + 1)
    assert isinstance(again, Rejected) and again.reason == "stale"


def test_client_ms_more_than_five_seconds_ahead_is_invalid():
    result = apply(initial(), cmd("play", client_ms=NOW + FUTURE_GUARD_MS + 1, position=0.0), NOW)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid"
    assert result.field == "client_ms"


def test_client_ms_exactly_five_seconds_ahead_is_accepted():
    assert isinstance(apply(initial(), cmd("play", client_ms=NOW + FUTURE_GUARD_MS, position=0.0), NOW), RoomState)


@pytest.mark.parametrize("position", [-0.001, math.nan, math.inf, None])
@pytest.mark.parametrize("type", ["play", "pause", "seek"])
def test_positions_must_be_finite_and_not_negative(type, position):
    result = apply(initial(), cmd(type, position=position), NOW)
    assert isinstance(result, Rejected)
    assert result.field == "position"


@pytest.mark.parametrize("rate", [0.2499, 4.0001, math.nan, None])
def test_rate_out_of_bounds_is_invalid(rate):
    result = apply(initial(), cmd("rate", rate=rate), NOW)
    assert isinstance(result, Rejected) and result.field == "rate"


@pytest.mark.parametrize("rate", [0.25, 4.0])
def test_rate_bounds_are_inclusive(rate):
    assert accepted(initial(), cmd("rate", rate=rate)).rate == rate


def test_an_unknown_type_is_a_programming_error():
    with pytest.raises(AssertionError):
        apply(initial(), cmd("rewind", position=1.0), NOW)


def test_playing_position_is_capped_at_the_media_duration():
    state = accepted(initial(), cmd("play", position=59.0))
    assert state.position_at(NOW + LEAD + 10_000) == 60.0


def test_state_round_trips_through_its_wire_form():
    state = accepted(initial(), cmd("play", position=1.5))
    assert RoomState.from_dict(state.to_dict()) == state
