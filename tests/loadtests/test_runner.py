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


def test_a_network_sweep_runs_each_point_and_its_floor_behind_each_network():
    from loadtests.__main__ import Block, plan

    networks = ((0.0, 0.0, 0.0), (150.0, 15.0, 0.0))
    specs = plan([Block(("sse",), (100,), (("uvicorn", "memory"),), networks=networks)], floor=True)
    assert [(s.server, s.rtt_ms, s.jitter_ms) for s in specs] == [
        ("uvicorn", 0.0, 0.0), ("floor", 0.0, 0.0), ("uvicorn", 150.0, 15.0), ("floor", 150.0, 15.0)]
    assert len({s.run_id for s in specs}) == 4
    assert specs[2].run_id.endswith("-rtt150j15")


def test_the_standard_network_is_four_round_trips_with_ten_percent_jitter():
    import argparse

    from loadtests.__main__ import networks_of

    args = argparse.Namespace(network="standard", rtt_ms=None, jitter_ms=None, bandwidth_kbps=None)
    assert networks_of(args) == ((0.0, 0.0, 0.0), (50.0, 5.0, 0.0), (150.0, 15.0, 0.0), (300.0, 30.0, 0.0))
    args = argparse.Namespace(network=None, rtt_ms="20", jitter_ms="4", bandwidth_kbps="0,500")
    assert networks_of(args) == ((20.0, 4.0, 0.0), (20.0, 4.0, 500.0))


def test_the_lean_probe_takes_over_from_a_thousand_viewers_and_both_runs_each_point_twice():
    from loadtests.__main__ import with_clients

    runs = [RunSpec("ws", 999, "uvicorn", "memory"), RunSpec("ws", 1000, "uvicorn", "memory")]
    assert [s.client for s in with_clients(runs, "auto")] == ["locust", "probe"]
    both = with_clients(runs, "both")
    assert [(s.viewers, s.client) for s in both] == [(999, "locust"), (999, "probe"), (1000, "locust"),
                                                     (1000, "probe")]
    assert len({s.run_id for s in both}) == 4


def test_a_scale_out_sweep_runs_each_redis_point_per_process_count_against_one_floor():
    from loadtests.__main__ import Block, plan

    block = Block(("ws",), (5000,), (("uvicorn", "redis"),), processes=(1, 2, 4))
    specs = plan([block], floor=True)
    assert [(s.server, s.processes) for s in specs] == [("uvicorn", 1), ("uvicorn", 2), ("uvicorn", 4), ("floor", 0)]
    assert specs[2].run_id == "ws-5000-uvicorn-redis-r0-p4"


def test_the_standard_sweep_has_every_dimension_once_and_a_floor_for_each_point():
    from loadtests.__main__ import STANDARD_BLOCKS, plan

    specs = plan(STANDARD_BLOCKS, floor=True)
    assert len({s.run_id for s in specs}) == len(specs)
    measured = [s for s in specs if s.server != "floor" and not s.idle_s]
    assert {s.transport for s in measured} == {"poll", "longpoll", "sse", "ws", "socketio"}
    assert {s.rtt_ms for s in measured} == {0.0, 50.0, 150.0, 300.0}
    assert {(s.viewers, s.processes) for s in measured if s.layer == "redis"} == {(5000, 1), (5000, 4), (20000, 4)}
    floors = {(s.transport, s.viewers, s.repeat, s.rtt_ms) for s in specs if s.server == "floor"}
    assert {(s.transport, s.viewers, s.repeat, s.rtt_ms) for s in measured} == floors
    # The goals are read from three passes of the push rows at 1,000 viewers on each server.
    for server in ("daphne", "uvicorn"):
        for transport in ("longpoll", "sse", "ws"):
            assert sorted(s.repeat for s in measured if (s.server, s.transport, s.viewers) ==
                          (server, transport, 1000)) == [0, 1, 2]


def test_a_floor_beyond_one_process_worth_of_sockets_is_split_over_processes():
    from loadtests.runner import FLOOR_VIEWERS_PER_PROCESS, floor_processes

    assert floor_processes(200) == floor_processes(FLOOR_VIEWERS_PER_PROCESS) == 1
    assert floor_processes(20000) == 2
