"""``python -m loadtests compare OLD_DIR NEW_DIR``: the ratios to the floor that moved by more than the noise.

A point is (transport, viewers, server, layer, network and client). Each repeat of a point is
divided by the floor of the same repeat and network (measured minutes apart in the same sweep), so
each folder gives a few ratios per point; their range is that folder's noise. A ratio moved when
the two ranges do not overlap and the medians differ by more than the wider of the two ranges
(and, with a single repeat on either side where no range exists, by more than ``SINGLE_RUN_NOISE``,
this machine's usual run-to-run spread of a floor ratio).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from loadtests.report import fmt, read_results
from loadtests.rows import TRANSPORT_ORDER, Row, is_nan

# The spread (max - min) ÷ median of a floor ratio over the three repeats of the 200-viewer daphne
# points in loadtests/results/2026-11-24 on the shared 2-core machine: p50 0.21 to 0.90, p99 0.29
# to 3.0, median of the eight 0.6. A single run is trusted to no better than that median.
SINGLE_RUN_NOISE = 0.6
METRICS = (("p50_ms", "p50 ÷ floor"), ("p99_ms", "p99 ÷ floor"))
Key = tuple[str, int, str, str, str]


@dataclass(frozen=True)
class Moved:
    key: Key
    metric: str
    old: list[float]
    new: list[float]

    @property
    def change(self) -> float:
        return statistics.median(self.new) / statistics.median(self.old) - 1


def _key(row: Row) -> Key:
    return (row.transport, row.viewers, row.server, row.layer, row.section)


def ratios(rows: list[Row]) -> dict[tuple[Key, str], list[float]]:
    """Per point and metric, one ratio to the floor per repeat that has its floor."""
    floors = {(r.transport, r.viewers, r.repeat, r.floor_section): r for r in rows
              if r.server == "floor" and r.scenario != "idle"}
    out: dict[tuple[Key, str], list[float]] = {}
    for row in rows:
        floor = floors.get((row.transport, row.viewers, row.repeat, row.floor_section))
        if row.server == "floor" or row.scenario == "idle" or floor is None:
            continue
        for metric, _ in METRICS:
            value, base = getattr(row, metric), getattr(floor, metric)
            if not (is_nan(value) or is_nan(base)) and base > 0:
                out.setdefault((_key(row), metric), []).append(value / base)
    return out


def moved(old: list[float], new: list[float]) -> bool:
    old_mid, new_mid = statistics.median(old), statistics.median(new)
    if len(old) < 2 or len(new) < 2:
        return abs(new_mid / old_mid - 1) > SINGLE_RUN_NOISE
    if min(new) <= max(old) and min(old) <= max(new):
        return False  # the ranges overlap: within the noise
    return abs(new_mid - old_mid) > max(max(old) - min(old), max(new) - min(new))


def compare(old_dir: Path, new_dir: Path) -> tuple[list[Moved], int, list[Key], list[Key]]:
    """What moved, how many (point, metric) pairs both folders have, and the points only one of them has."""
    old_rows, _, _ = read_results(old_dir)
    new_rows, _, _ = read_results(new_dir)
    old, new = ratios(old_rows), ratios(new_rows)
    both = sorted(set(old) & set(new), key=_order)
    found = [Moved(key, metric, old[key, metric], new[key, metric]) for key, metric in both
             if moved(old[key, metric], new[key, metric])]
    old_points, new_points = {k for k, _ in old}, {k for k, _ in new}
    return (found, len(both), sorted(old_points - new_points, key=lambda k: _order((k, ""))),
            sorted(new_points - old_points, key=lambda k: _order((k, ""))))


def _order(item: tuple[Key, str]) -> tuple[object, ...]:
    (transport, viewers, server, layer, section), metric = item
    return (section, f"{server}/{layer}", TRANSPORT_ORDER.index(transport) if transport in TRANSPORT_ORDER else 9,
            viewers, metric)


def _spread(values: list[float]) -> str:
    text = f"{fmt(statistics.median(values), 2)}x"
    return f"{text} ({fmt(min(values), 2)}-{fmt(max(values), 2)}, n={len(values)})" if len(values) > 1 else text


def render(old_dir: Path, new_dir: Path) -> str:
    found, pairs, only_old, only_new = compare(old_dir, new_dir)
    names = dict(METRICS)
    lines = [f"# {old_dir} -> {new_dir}", "",
             f"{len(found)} of {pairs} ratios to the floor moved by more than the noise "
             f"(single runs: by more than {SINGLE_RUN_NOISE:.0%}).", ""]
    if found:
        lines += ["| transport | viewers | server/layer | network | ratio | old | new | change |",
                  "|---|---:|---|---|---|---:|---:|---:|"]
        for item in found:
            transport, viewers, server, layer, section = item.key
            verdict = "worse" if item.change > 0 else "better"
            lines.append(f"| {transport} | {viewers} | {server}/{layer} | {section} | {names[item.metric]} "
                         f"| {_spread(item.old)} | {_spread(item.new)} | {item.change:+.0%} ({verdict}) |")
        lines.append("")
    for label, keys in (("only in the old folder", only_old), ("only in the new folder", only_new)):
        if keys:
            lines.append(f"Points {label} (not compared): " + "; ".join(
                f"{t} {v} {s}/{lay} {sec}" for t, v, s, lay, sec in keys))
    if pairs == 0:
        lines.append("Nothing to compare: no point has a floor row in both folders.")
    return "\n".join(lines)


def main(old_dir: str, new_dir: str) -> int:
    for folder in (old_dir, new_dir):
        if not (Path(folder) / "results.csv").exists():
            raise SystemExit(f"{folder}: no results.csv (a folder written by python -m loadtests run)")
    print(render(Path(old_dir), Path(new_dir)))
    found, _, _, _ = compare(Path(old_dir), Path(new_dir))
    return 1 if any(item.change > 0 for item in found) else 0
