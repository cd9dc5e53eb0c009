from __future__ import annotations

import threading

import pytest

from rooms.background import PeriodicThread


def test_a_failing_round_is_logged_and_the_next_round_runs(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    two_rounds = threading.Event()

    def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        two_rounds.set()

    periodic = PeriodicThread(name="test-periodic", work=work, interval_s=lambda: 0.01)
    periodic.ensure_started()
    periodic.ensure_started()  # a second start while it runs is a no-op
    try:
        assert two_rounds.wait(10)
    finally:
        periodic.stop()
    assert "test-periodic failed" in caplog.text
    assert [t.name for t in threading.enumerate()].count("test-periodic") == 0


def test_an_interval_of_zero_ends_the_thread() -> None:
    periodic = PeriodicThread(name="test-zero", work=lambda: None, interval_s=lambda: 0.0)
    periodic.ensure_started()
    periodic.stop(timeout_s=10)
    assert "test-zero" not in [t.name for t in threading.enumerate()]
