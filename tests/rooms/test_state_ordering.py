"""Ordering properties: delivery order never changes who wins.

Last writer wins by (client_ms, client_id) and a stale command is refused, not
merged. So the newest command always decides the outcome of the fields it sets,
whatever order the network delivered the commands in, and commands that set the
whole playback state (play, pause) give the same final state in every order.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from rooms.state import Command, Media, Rejected, RoomState, apply

NOW = 2_000_000_000.0
DEMO = Media(url="/media/demo.webm", title="Demo", duration=600.0, source="demo")
SETS = {"play": ("playing", "position", "anchor_ms"), "pause": ("playing", "position", "anchor_ms"),
        "seek": ("position",), "rate": ("rate",)}


def command_strategy(types: list[str]) -> st.SearchStrategy[Command]:
    return st.builds(
        lambda type, offset, client, position, rate: Command(
            type=type, client_id=f"c-{client}", client_ms=NOW - offset,
            position=position if type != "rate" else None, rate=rate if type == "rate" else None),
        st.sampled_from(types), st.integers(0, 50), st.integers(0, 3),
        st.floats(0, 500, allow_nan=False), st.sampled_from([0.5, 1.0, 1.5, 2.0]))


def distinct_commands(types: list[str]) -> st.SearchStrategy[list[Command]]:
    return st.lists(command_strategy(types), min_size=1, max_size=12, unique_by=lambda c: c.order_key)


def deliver(commands: list[Command]) -> tuple[RoomState, list[RoomState]]:
    state = RoomState.initial(room="r", media=DEMO, now_ms=NOW - 100_000)
    accepted = []
    for command in commands:
        result = apply(state, command, NOW, start_lead_ms=250.0)
        if not isinstance(result, Rejected):
            state = result
            accepted.append(result)
    return state, accepted


def without_history(state: RoomState) -> RoomState:
    return dataclasses.replace(state, version=0)


@given(distinct_commands(["play", "pause"]), st.randoms())
def test_play_and_pause_in_any_order_end_as_delivered_sorted(commands, rnd):
    shuffled = commands[:]
    rnd.shuffle(shuffled)
    in_any_order, _ = deliver(shuffled)
    in_order, _ = deliver(sorted(commands, key=lambda c: c.order_key))
    assert without_history(in_any_order) == without_history(in_order)


@given(distinct_commands(["play", "pause", "seek", "rate"]), st.randoms())
def test_the_newest_command_wins_in_any_order(commands, rnd):
    shuffled = commands[:]
    rnd.shuffle(shuffled)
    in_any_order, _ = deliver(shuffled)
    in_order, _ = deliver(sorted(commands, key=lambda c: c.order_key))
    newest = max(commands, key=lambda c: c.order_key)
    assert in_any_order.order_key == in_order.order_key == newest.order_key
    for name in SETS[newest.type]:
        assert getattr(in_any_order, name) == getattr(in_order, name)


@given(distinct_commands(["play", "pause", "seek", "rate"]), st.randoms())
def test_accepted_versions_are_contiguous_and_strictly_newer(commands, rnd):
    shuffled = commands[:]
    rnd.shuffle(shuffled)
    _, accepted = deliver(shuffled)
    assert [state.version for state in accepted] == list(range(2, len(accepted) + 2))
    keys = [state.order_key for state in accepted]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_a_late_play_is_refused_even_when_the_newer_seek_left_the_room_paused():
    # The limit of last-writer-wins without merging: the play is older than the
    # seek, so it is stale (409), and its author sees the paused state to act on.
    play = Command(type="play", client_id="c-1", client_ms=NOW - 20, position=0.0)
    seek = Command(type="seek", client_id="c-2", client_ms=NOW - 10, position=30.0)
    late_play, _ = deliver([seek, play])
    assert not late_play.playing
    assert late_play.position == 30.0
