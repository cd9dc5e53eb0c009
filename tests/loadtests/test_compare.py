"""python -m loadtests compare: the ratios to the floor that moved by more than the repeats' noise."""

from __future__ import annotations

import subprocess
import sys

from loadtests.compare import compare, moved
from loadtests.report import write_results
from loadtests.runner import ROOT
from tests.loadtests.test_report import row


def sweep(tmp_path, name, sse_p99s, ws_p99s):
    rows = []
    for repeat, (sse, ws) in enumerate(zip(sse_p99s, ws_p99s, strict=True)):
        rows += [row("sse", 200, 5.0, sse, repeat=repeat), row("ws", 200, 5.0, ws, repeat=repeat),
                 row("sse", 200, 2.0, 10.0, server="floor", layer="floor", repeat=repeat),
                 row("ws", 200, 2.0, 10.0, server="floor", layer="floor", repeat=repeat)]
    folder = tmp_path / name
    folder.mkdir()
    write_results(folder, rows, {r.run_id: [1.0] for r in rows}, {"date": "d"})
    return folder


def test_only_a_ratio_that_leaves_the_noise_is_reported(tmp_path):
    old = sweep(tmp_path, "old", [20.0, 22.0, 24.0], [20.0, 22.0, 24.0])
    new = sweep(tmp_path, "new", [40.0, 42.0, 44.0], [21.0, 25.0, 23.0])
    found, pairs, only_old, only_new = compare(old, new)
    assert pairs == 4 and not only_old and not only_new
    assert [(m.key[0], m.metric) for m in found] == [("sse", "p99_ms")]
    assert round(found[0].change, 2) == round(4.2 / 2.2 - 1, 2)


def test_the_command_prints_the_move_and_fails_on_a_regression(tmp_path):
    old = sweep(tmp_path, "old", [20.0, 22.0, 24.0], [20.0, 22.0, 24.0])
    new = sweep(tmp_path, "new", [40.0, 42.0, 44.0], [20.0, 22.0, 24.0])
    result = subprocess.run([sys.executable, "-m", "loadtests", "compare", str(old), str(new)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "| sse | 200 | daphne/memory | loopback | p99 ÷ floor | 2.20x (2.00-2.40, n=3) | 4.20x" in result.stdout
    back = subprocess.run([sys.executable, "-m", "loadtests", "compare", str(new), str(old)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert back.returncode == 0 and "(better)" in back.stdout


def test_overlapping_ranges_never_move_and_single_runs_need_a_large_change():
    assert not moved([1.0, 2.0, 3.0], [2.5, 3.5, 4.5])
    assert moved([1.0, 1.1, 1.2], [2.0, 2.1, 2.2])
    assert not moved([1.0], [1.5])
    assert moved([1.0], [1.7])
