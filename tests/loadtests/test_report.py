"""The report writer: results.csv, cdf.csv, report.md with floor ratios and readings, and the plots."""

from __future__ import annotations

import csv
import math

from loadtests.metrics import Summary
from loadtests.report import FIELDS, Row, group, read_results, render_report, rewrite_report, write_results
from loadtests.runner import RunSpec


def summary(p50: float, p99: float, *, errors: int = 0, messages_per_s: float = 100.0) -> Summary:
    return Summary(p50_ms=p50, p95_ms=p99 * 0.9, p99_ms=p99, max_ms=p99 * 1.2, samples=100,
                   messages_per_s=messages_per_s, commands_per_s=2.0, bytes_per_viewer_min_idle=0.0,
                   bytes_per_viewer_min_busy=40_960.0, requests_per_viewer_min_idle=0.0,
                   requests_per_viewer_min_busy=0.0, missed=0, out_of_order=0, duplicates=0, reconnects=0,
                   errors=errors, command_errors=0, viewers_seen=50, busy_s=10.0)


def row(transport: str, viewers: int, p50: float, p99: float, *, server: str = "daphne", layer: str = "memory",
        repeat: int = 0, errors: int = 0, client_max: float = 10.0) -> Row:
    spec = RunSpec(transport, viewers, server, layer, repeat)
    return Row.build(spec=spec, summary=summary(p50, p99, errors=errors, messages_per_s=2.0 * viewers),
                     server_cpu_pct_idle=1.0, server_cpu_pct_busy=20.0, server_rss_mib=100.0,
                     server_kib_per_viewer=50.0, client_cpu_pct=client_max, client_max_process_cpu_pct=client_max,
                     client_processes=1, command_rate=2.0)


ROWS = [
    row("sse", 50, 4.0, 8.0), row("sse", 50, 5.0, 10.0, repeat=1), row("sse", 50, 6.0, 30.0, repeat=2),
    row("ws", 50, 3.0, 6.0), row("ws", 1000, 50.0, 300.0, client_max=95.0),
    row("sse", 1000, 40.0, 900.0, errors=3),
    row("sse", 50, 2.0, 4.0, server="floor", layer="floor"), row("ws", 50, 1.5, 3.0, server="floor", layer="floor"),
]


def test_row_derives_cpu_per_thousand_viewers_and_delivery():
    r = row("ws", 200, 5.0, 10.0)
    assert r.server_cpu_pct_per_1000_viewers == 100.0
    assert r.delivered_ratio == 1.0


def test_a_run_with_errors_does_not_hold():
    assert row("ws", 50, 3.0, 6.0).holds()
    assert not row("ws", 50, 3.0, 6.0, errors=1).holds()
    assert not row("ws", 50, 3.0, 600.0).holds()


def test_short_polling_is_allowed_its_interval():
    assert row("poll", 50, 500.0, 1200.0).holds()


def test_repeats_are_grouped_into_median_with_spread():
    point = group(ROWS)[("sse", 50, "daphne", "memory")]
    assert point.median("p99_ms") == 10.0
    assert point.spread("p99_ms") == (8.0, 30.0)


def test_report_quotes_ratios_to_the_floor_and_readings():
    text = render_report(ROWS, {"date": "2026-11-24", "command": "python -m loadtests run"}, ["p99_vs_viewers.png"])
    assert "## daphne/memory" in text
    assert "| sse | 50 | 5.0 (4.0-6.0) |" in text
    assert "| 2.5x | 2.5x |" in text  # sse p50 5.0 / 2.0, p99 10.0 / 4.0
    assert "50 viewers: lowest p99 is **ws** at 6.0 ms" in text
    assert "**sse** holds up to 50 viewers; at 1000 it breaks (3 errors, p99 900 ms)" in text
    assert "load generator was CPU-bound at 1000 viewers" in text
    assert "![p99_vs_viewers.png](p99_vs_viewers.png)" in text


def test_write_results_writes_csv_cdf_report_and_plots(tmp_path):
    latencies = {r.run_id: [r.p50_ms, r.p99_ms, r.max_ms] for r in ROWS}
    write_results(tmp_path, ROWS, latencies, {"date": "2026-11-24", "command": "x"})
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(ROWS)
    assert list(rows[0]) == FIELDS
    for name in ("latency_cdf.png", "p99_vs_viewers.png", "bytes_per_viewer_minute.png",
                 "server_cpu_per_1000_viewers.png", "report.md", "cdf.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert "## Floor" in (tmp_path / "report.md").read_text()


def test_results_read_back_as_written(tmp_path):
    latencies = {r.run_id: [1.0, 2.0] for r in ROWS}
    write_results(tmp_path, ROWS, latencies, {"date": "d"})
    rows, cdf, meta = read_results(tmp_path)
    assert [r.run_id for r in rows] == [r.run_id for r in ROWS]
    assert rows[4].client_bound is True
    assert math.isclose(rows[0].p99_ms, 8.0)
    assert cdf[ROWS[0].run_id][0] == 1.0 and cdf[ROWS[0].run_id][-1] == 2.0
    assert meta == {"date": "d"}
    assert len(rewrite_report(tmp_path)) == 4


def test_idle_runs_get_their_own_table_and_stay_out_of_the_comparison():
    spec = RunSpec("longpoll", 200, "daphne", "memory", idle_s=60.0)
    idle = Row.build(spec=spec, summary=summary(math.nan, math.nan), server_cpu_pct_idle=4.0,
                     server_cpu_pct_busy=math.nan, server_rss_mib=90.0, server_kib_per_viewer=40.0,
                     client_cpu_pct=1.0, client_max_process_cpu_pct=1.0, client_processes=1, command_rate=0.0)
    assert idle.scenario == "idle" and idle.run_id.endswith("-idle")
    text = render_report([*ROWS, idle], {"date": "d"}, [])
    assert "## Idle cost" in text
    assert "| longpoll | 200 | daphne/memory |" in text
    assert "**longpoll**" not in text  # no capacity reading from an idle run


def test_a_reading_by_hand_survives_rewriting(tmp_path):
    write_results(tmp_path, ROWS, {r.run_id: [1.0] for r in ROWS}, {"date": "d"})
    (tmp_path / "reading.md").write_text("## Reading\n\nSSE and WebSocket tie.\n")
    rewrite_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.index("SSE and WebSocket tie.") < text.index("## daphne/memory")


def network_row(transport: str, rtt: float, p50: float, p99: float, server: str = "uvicorn") -> Row:
    layer = "floor" if server == "floor" else "memory"
    spec = RunSpec(transport, 100, server, layer, 0, 0.0, rtt, rtt / 10)
    return Row.build(spec=spec, summary=summary(p50, p99), server_cpu_pct_idle=1.0, server_cpu_pct_busy=20.0,
                     server_rss_mib=100.0, server_kib_per_viewer=50.0, client_cpu_pct=10.0,
                     client_max_process_cpu_pct=10.0, client_processes=1, command_rate=2.0, proxy_cpu_pct=3.0)


def test_a_network_sweep_reports_latency_against_rtt_per_network_and_plots_it(tmp_path):
    rows = [network_row(t, rtt, rtt / 2 + 5, rtt / 2 + 20, server) for t in ("sse", "poll")
            for rtt in (0.0, 150.0) for server in ("uvicorn", "floor")]
    write_results(tmp_path, rows, {r.run_id: [1.0, 2.0] for r in rows},
                  {"date": "d", "short-poll interval s": 1.0, "commands per second (busy)": 0.5})
    text = (tmp_path / "report.md").read_text()
    assert "## Latency against the network's round trip" in text
    assert "## uvicorn/memory, RTT 150 ± 15 ms" in text and "## uvicorn/memory, loopback" in text
    # the model: SSE RTT/2 = 75 ms, short polling interval/2 + RTT/2 = 575 ms
    assert "| sse | uvicorn/memory | 100 | 150 | 80.0 | 95.0 | 75.0 | 5.0 | 1.0x |" in text
    assert "| poll | uvicorn/memory | 100 | 150 | 80.0 | 95.0 | 575 | -495 |" in text
    assert (tmp_path / "latency_vs_rtt.png").read_bytes().startswith(b"\x89PNG")
    back, _, _ = read_results(tmp_path)
    assert {(r.rtt_ms, r.jitter_ms) for r in back} == {(0.0, 0.0), (150.0, 15.0)}


def test_results_written_before_the_network_lab_read_back_as_loopback(tmp_path):
    write_results(tmp_path, ROWS, {r.run_id: [1.0] for r in ROWS}, {"date": "d"})
    lines = (tmp_path / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("rtt_ms", "jitter_ms", "bandwidth_kbps", "client",
                                                                 "proxy_cpu_pct")]
    (tmp_path / "results.csv").write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines))
    back, _, _ = read_results(tmp_path)
    assert len(back) == len(ROWS) and {r.network for r in back} == {"loopback"}


def scale_row(transport: str, viewers: int, processes: int, p99: float, server: str = "uvicorn") -> Row:
    layer = "floor" if server == "floor" else "redis"
    spec = RunSpec(transport, viewers, server, layer, client="probe", processes=0 if server == "floor" else processes)
    return Row.build(spec=spec, summary=summary(p99 / 2, p99), server_cpu_pct_idle=1.0, server_cpu_pct_busy=80.0,
                     server_rss_mib=100.0, server_kib_per_viewer=12.0, client_cpu_pct=50.0,
                     client_max_process_cpu_pct=50.0, client_processes=1, command_rate=2.0, client="probe",
                     server_processes=processes, scale_out=server != "floor", server_busiest_process_cpu_pct=60.0)


def test_a_scale_out_sweep_has_its_table_sections_per_process_count_and_plot(tmp_path):
    rows = [scale_row("ws", v, p, 10.0 * p + v / 100) for v in (1000, 5000) for p in (1, 2, 4)]
    rows += [scale_row("ws", v, 1, 5.0, server="floor") for v in (1000, 5000)]
    write_results(tmp_path, rows, {r.run_id: [1.0] for r in rows}, {"date": "d"})
    text = (tmp_path / "report.md").read_text()
    assert "## Scale-out on Redis" in text
    assert "| ws | 5000 | uvicorn x4 | probe | 45.0 | 90.0 | 18.0x | 1 % | 0 | 80.0 | 60 | 12.0 | 50 (50) |" in text
    # each process count its own section, divided by the one-process floor of the same client
    assert "## uvicorn/redis, loopback, probe client, 2 server processes" in text
    section = text.split("## uvicorn/redis, loopback, probe client, 2 server processes")[1].split("\n## ")[0]
    assert "| ws | 1000 | 15.0 | 27.0 | 30.0 | 36.0 | 6.0x | 6.0x |" in section
    assert (tmp_path / "p99_vs_viewers_by_processes.png").read_bytes().startswith(b"\x89PNG")


def test_the_goals_compare_the_medians_at_a_thousand_viewers_with_the_floor():
    from loadtests.report import goals_table

    rows = [row("sse", 1000, 20.0, p99, repeat=r, server="uvicorn") for r, p99 in enumerate((50.0, 55.0, 200.0))]
    rows += [row("sse", 1000, 10.0, 50.0, repeat=r, server="floor", layer="floor") for r in range(3)]
    rows += [row("longpoll", 1000, 30.0, 100.0, server="uvicorn"),
             row("longpoll", 1000, 10.0, 50.0, server="floor", layer="floor")]
    lines = goals_table(rows)
    sse = next(line for line in lines if "sse uvicorn/memory (3 passes)" in line)
    assert "1.10x" in sse and sse.endswith("| 1.2 | yes |")
    longpoll = next(line for line in lines if "longpoll uvicorn/memory (1 pass)" in line)
    assert "2.00x" in longpoll and longpoll.endswith("| 1.5 | no |")
    assert goals_table([row("sse", 50, 4.0, 8.0)]) == []
