"""How the runner decides to run small sweeps side by side."""

from __future__ import annotations

from loadtests.runner import PARALLEL_MAX_TOTAL_VIEWERS, RunSpec, Settings, parallel_runs


def specs(viewers: int, count: int) -> list[RunSpec]:
    transports = ["poll", "longpoll", "sse", "ws"]
    return [RunSpec(transports[i % 4], viewers, "daphne", "memory", repeat=i // 4) for i in range(count)]


def test_a_quick_look_runs_every_run_at_once():
    assert parallel_runs(specs(50, 8), Settings()) == 8


def test_a_sweep_beyond_the_bound_runs_one_at_a_time():
    assert parallel_runs(specs(200, 4), Settings()) == 1
    assert parallel_runs(specs(PARALLEL_MAX_TOTAL_VIEWERS // 4 + 1, 4), Settings()) == 1


def test_an_explicit_choice_wins():
    assert parallel_runs(specs(1000, 4), Settings(parallel=2)) == 2
    assert parallel_runs(specs(5, 4), Settings(parallel=1)) == 1
