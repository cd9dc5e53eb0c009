"""A tiny headless sweep against a real daphne server: every transport, a few viewers, a few seconds."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest

from loadtests.runner import ROOT


@pytest.mark.timeout(150)
def test_tiny_sweep_writes_sane_csv_report_and_plots(tmp_path):
    out = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "run", "--transports", "poll,longpoll,sse,ws", "--viewers", "5",
         "--duration", "8", "--no-floor", "--quiet", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "results.csv", newline="") as handle:
        rows = {row["transport"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"poll", "longpoll", "sse", "ws"}
    for transport, row in rows.items():
        assert int(row["viewers_seen"]) == 5, transport
        assert int(row["samples"]) > 0, transport
        assert int(row["out_of_order"]) == 0, transport
        assert int(row["errors"]) == 0, transport
        p50, p99 = float(row["p50_ms"]), float(row["p99_ms"])
        assert 0 < p50 <= p99 < (2500 if transport == "poll" else 1000), transport
        assert float(row["messages_per_s"]) > 0, transport
        assert float(row["bytes_per_viewer_min_busy"]) > 0, transport
        assert not math.isnan(float(row["server_cpu_pct_busy"] or "nan")), transport
        assert float(row["server_rss_mib"]) > 10, transport
    assert float(rows["poll"]["requests_per_viewer_min_idle"]) > 30  # one poll a second
    assert float(rows["ws"]["requests_per_viewer_min_idle"]) == 0
    for name in ("latency_cdf.png", "p99_vs_viewers.png", "bytes_per_viewer_minute.png",
                 "server_cpu_per_1000_viewers.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    assert "## daphne/memory" in (out / "report.md").read_text()


@pytest.mark.timeout(150)
def test_the_lean_probe_client_fills_the_same_columns(tmp_path):
    out = tmp_path / "probe"
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "run", "--transports", "poll,sse,ws", "--viewers", "5", "--duration", "6",
         "--client", "probe", "--no-floor", "--quiet", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "results.csv", newline="") as handle:
        rows = {row["transport"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"poll", "sse", "ws"}
    for transport, row in rows.items():
        assert row["client"] == "probe" and row["run_id"].endswith("-probe"), transport
        assert int(row["viewers_seen"]) == 5, transport
        assert int(row["samples"]) > 0 and int(row["errors"]) == 0 and int(row["out_of_order"]) == 0, transport
        assert 0 < float(row["p50_ms"]) <= float(row["p99_ms"]), transport
        assert float(row["bytes_per_viewer_min_busy"]) > 0, transport
    assert float(rows["poll"]["requests_per_viewer_min_idle"]) > 30
    assert float(rows["ws"]["requests_per_viewer_min_idle"]) == 0
