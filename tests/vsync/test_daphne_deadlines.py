"""vsync.daphne_guard.Deadlines: read deadlines checked by one reactor timer (the end-to-end cut-offs are
tests/hardening/test_slow_clients.py, against a real daphne)."""

from __future__ import annotations

from typing import Any

import pytest

from vsync import daphne_guard


class FakeReactor:
    def __init__(self) -> None:
        self.calls: list[tuple[float, Any]] = []

    def callLater(self, seconds: float, function: Any) -> None:  # Twisted's name
        self.calls.append((seconds, function))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    now = {"t": 1000.0}
    monkeypatch.setattr(daphne_guard.time, "monotonic", lambda: now["t"])
    return now


def test_only_the_due_and_armed_deadlines_fire_and_the_timer_stops_when_none_is_left(clock, monkeypatch):
    reactor = FakeReactor()
    monkeypatch.setattr(daphne_guard, "_clock", reactor)
    deadlines = daphne_guard.Deadlines()
    fired: list[str] = []
    early, late, dropped = object(), object(), object()
    deadlines.arm(early, 1.0, lambda: fired.append("early"))
    deadlines.arm(late, 5.0, lambda: fired.append("late"))
    deadlines.arm(dropped, 1.0, lambda: fired.append("dropped"))
    deadlines.disarm(dropped)
    assert len(reactor.calls) == 1  # one timer for all of them

    clock["t"] += 1.0
    deadlines._tick()
    assert fired == ["early"]
    assert len(reactor.calls) == 2  # "late" is still armed: the timer goes on

    deadlines.arm(early, 10.0, lambda: fired.append("early again"))  # re-arming replaces
    clock["t"] += 4.0
    deadlines._tick()
    assert fired == ["early", "late"]
    clock["t"] += 6.0
    deadlines._tick()
    assert fired == ["early", "late", "early again"]
    assert len(reactor.calls) == 3  # nothing left: no new timer
    deadlines.arm(late, 1.0, lambda: None)
    assert len(reactor.calls) == 4  # arming again starts it again


def test_a_failing_deadline_does_not_stop_the_others(clock, monkeypatch, caplog):
    monkeypatch.setattr(daphne_guard, "_clock", FakeReactor())
    deadlines = daphne_guard.Deadlines()
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    first, second = object(), object()  # owners stay alive while armed, as requests and channels do
    deadlines.arm(first, 0.5, broken)
    deadlines.arm(second, 0.5, lambda: fired.append("other"))
    clock["t"] += 1.0
    deadlines._tick()
    assert fired == ["other"]
    assert "a read deadline failed" in caplog.text
