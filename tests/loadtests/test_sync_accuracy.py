"""sync_accuracy's arithmetic: pages' readings on a grid, against each other and the room."""

from __future__ import annotations

import pytest

from loadtests.sync_accuracy import analyse, has_version_from, position_at, reanalyse
from rooms.state import Media, RoomState

SENT = 1_000_000.0
ANCHOR = SENT + 1_000.0


def room(version: int = 2) -> RoomState:
    return RoomState(room="r", version=version, playing=True, position=10.0, anchor_ms=ANCHOR, rate=1.0,
                     media=Media(url="/media/demo.webm", duration=60.0), changed_by="c", changed_ms=SENT)


def page(off_ms: float, has_version_at: float, until: float = SENT + 5_000) -> list[list]:
    """Readings every 20 ms: the old version (playing from 50 s) until ``has_version_at``, then standing
    on 10 s until the anchor, then playing ``off_ms`` off the room."""
    readings, t = [], SENT
    while t <= until:
        if t < has_version_at:
            readings.append([t, 50.0 + (t - SENT) / 1000, False, 1.0, 1])
        elif t < ANCHOR:
            readings.append([t, 10.0, True, 1.0, 2])
        else:
            readings.append([t, 10.0 + (t - ANCHOR + off_ms) / 1000, False, 1.0, 2])
        t += 20.0
    return readings


def test_a_reading_is_carried_to_the_instant_and_a_still_one_is_not():
    trace = [[0.0, 1.0, False, 1.0, 1], [20.0, 1.02, False, 1.0, 1], [40.0, 5.0, True, 1.0, 1]]
    assert position_at(trace, 20.0) == pytest.approx(1.02)  # median of 1.02, 1.02 and the still 5.0
    assert position_at(trace, 500.0) is None


def test_a_page_has_a_version_from_its_first_reading_of_it():
    trace = page(0.0, has_version_at=SENT + 300)
    assert has_version_from(trace, 2) == pytest.approx(SENT + 300, abs=20)
    assert has_version_from(trace, 3) == float("inf")
    assert has_version_from([[0.0, 1.0, False, 1.0]], 1) == float("inf")  # readings without a version


def test_after_the_start_counts_only_once_every_page_has_the_version_and_the_anchor_passed():
    on_time, late_and_off = page(0.0, has_version_at=SENT + 200), page(12.0, has_version_at=SENT + 800)
    result = analyse([on_time, late_and_off], room(), SENT, SENT + 5_000)
    # Before 800 ms the second page still plays the old version 40 s away: delivery, not sync.
    assert max(result["pairwise_ms"]) > 39_000
    assert result["after_start_pairwise_max_ms"] == pytest.approx(12.0, abs=0.5)
    assert result["spread_at_read_ms"] == pytest.approx(12.0, abs=0.5)
    assert result["room_offset_at_read_ms"] == pytest.approx(12.0, abs=0.5)
    assert result["within_20ms_after_s"] is not None and result["within_20ms_after_s"] <= 1.1
    assert max(result["pairwise_steady_ms"]) == pytest.approx(12.0, abs=0.5)


def test_a_page_that_never_gets_the_version_has_no_after_the_start():
    result = analyse([page(0.0, SENT + 200), page(0.0, float("inf"))], room(), SENT, SENT + 5_000)
    assert result["after_start_pairwise_max_ms"] is None
    assert result["within_20ms_after_s"] is None


def test_a_kept_run_is_analysed_again_without_its_traces():
    traces = [page(0.0, SENT + 200), page(12.0, SENT + 800)]
    run = {"args": {"seconds": 5}, "load_average": [1.0],
           "results": {"mixed": {"steal_pct": 0.5, "commands": [
               {"command": "seek", "seeks_per_page": [1, 1], "traces": traces, "engine_traces": [[], []],
                "state": room().to_dict(), "sent_ms": SENT - 300}]}}}
    again = reanalyse(run, "an older run")
    assert again["note"] == "an older run"
    mixed = again["results"]["mixed"]
    assert mixed["steal_pct"] == 0.5
    (command,) = mixed["commands"]
    assert not {"traces", "engine_traces", "state", "sent_ms", "pairwise_ms"} & set(command)
    assert command["seeks_per_page"] == [1, 1]
    assert command["accepted_after_ms"] == 300.0
    assert command["after_start_pairwise_max_ms"] == pytest.approx(12.0, abs=0.5)
    assert mixed["pairwise_steady_ms"]["max"] == pytest.approx(12.0, abs=0.5)
