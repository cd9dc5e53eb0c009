"""The chat probe's figures: one row per transport and step, the delivery check, and its results folder.

Delivery is checked per viewer (seat) against the ids the probe posted: every one received
(else ``lost``), none twice (``duplicated``), none after a higher one (``out_of_order``),
counting the viewers that were dropped and reconnected in the step. Latencies are those
of the viewers that stayed connected through the step; the reconnected viewers' are
``resumed_p99_ms`` (they include the time they were away).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A step "falls behind" when its chat p99 passes this, or a message is lost: a chat line a
# second late is one a viewer notices (it answers a moment the room already moved past).
BEHIND_P99_MS = 1000.0
# The posting path "capped" the step when it managed less than this share of the asked rate.
POSTED_SHARE = 0.9


@dataclass
class Step:
    """What the parent did in one step: the ids it posted, the versions it made, who it dropped."""

    name: str  # "quiet" (messages, then commands, apart) or "rate"
    rate_asked: float
    started_ms: float
    ended_ms: float
    chat_ids: list[int]
    versions: list[int]
    rate_posted: float
    post_errors: int = 0
    dropped: set[int] = field(default_factory=set)  # seat indexes over all client processes
    server_cpu_pct: float = float("nan")
    client_cpu_pct: float = float("nan")


@dataclass
class ChatRow:
    transport: str
    step: str
    rate_asked: float
    rate_posted: float
    messages: int
    versions: int
    viewers: int
    connected: int
    chat_p50_ms: float
    chat_p99_ms: float
    chat_max_ms: float
    state_p50_ms: float
    state_p99_ms: float
    chat_bytes_per_message: float
    state_bytes_per_version: float
    bytes_per_viewer_s: float
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    reconnected: int
    resumed_p99_ms: float
    post_errors: int
    server_cpu_pct: float
    client_cpu_pct: float
    behind: bool
    posting_capped: bool


@dataclass
class Delivery:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0


def delivery(received: list[int], wanted: set[int]) -> Delivery:
    """One viewer's chat ids in receipt order checked against ``wanted``: lost, twice, out of order."""
    counts = Counter(i for i in received if i in wanted)
    highest, late = 0, 0
    for message_id in received:
        if message_id < highest and message_id in wanted:
            late += 1
        highest = max(highest, message_id)
    return Delivery(expected=len(wanted), delivered=len(counts), lost=len(wanted - counts.keys()),
                    duplicated=sum(counts.values()) - len(counts), out_of_order=late)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank, as loadtests.probe); NaN when empty."""
    return values[max(0, int(len(values) * q + 0.5) - 1)] if values else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(transport: str, viewers: int, step: Step, seats: list[dict[str, Any]]) -> ChatRow:
    """The row of one step from every seat's results (loadtests.chat_viewers.Seat.results)."""
    wanted, versions = set(step.chat_ids), set(step.versions)
    steady: list[float] = []
    resumed: list[float] = []
    states: list[float] = []
    chat_sizes: list[float] = []
    state_sizes: list[float] = []
    total = Delivery()
    received_bytes = 0
    ready = [seat for seat in seats if seat["ready"]]
    for index, seat in enumerate(seats):
        if not seat["ready"]:
            continue
        mine = [row for row in seat["chat"] if row[0] in wanted]
        (resumed if index in step.dropped else steady).extend(t_ms - sent_ms for _, t_ms, sent_ms, _ in mine)
        chat_sizes += [wire for *_, wire in mine]
        if index not in step.dropped:
            states += [t_ms - sent for version, t_ms, sent, _ in seat["state"] if version in versions]
        state_sizes += [wire for version, *_, wire in seat["state"] if version in versions]
        checked = delivery([row[0] for row in seat["chat"]], wanted)
        for name in ("expected", "delivered", "lost", "duplicated", "out_of_order"):
            setattr(total, name, getattr(total, name) + getattr(checked, name))
        received_bytes += sum(size for second, size in seat["bytes_by_second"].items()
                              if step.started_ms <= second * 1000 < step.ended_ms)
    steady.sort()
    resumed.sort()
    states.sort()
    seconds = max(1.0, round((step.ended_ms - step.started_ms) / 1000))
    chat_p99 = pct(steady, 0.99)
    return ChatRow(
        transport=transport, step=step.name, rate_asked=step.rate_asked, rate_posted=round(step.rate_posted, 2),
        messages=len(step.chat_ids), versions=len(step.versions), viewers=viewers, connected=len(ready),
        chat_p50_ms=_median(steady), chat_p99_ms=chat_p99, chat_max_ms=steady[-1] if steady else float("nan"),
        state_p50_ms=_median(states), state_p99_ms=pct(states, 0.99),
        chat_bytes_per_message=_median(chat_sizes), state_bytes_per_version=_median(state_sizes),
        bytes_per_viewer_s=received_bytes / max(1, len(ready)) / seconds, **dataclasses.asdict(total),
        reconnected=len(step.dropped), resumed_p99_ms=pct(resumed, 0.99), post_errors=step.post_errors,
        server_cpu_pct=step.server_cpu_pct, client_cpu_pct=step.client_cpu_pct,
        behind=bool(chat_p99 > BEHIND_P99_MS or total.lost), posting_capped=step.name == "rate" and
        step.rate_posted < POSTED_SHARE * step.rate_asked)


def sustained(rows: list[ChatRow]) -> tuple[float, ChatRow | None]:
    """The highest posted rate of a rate step before the first that fell behind, and that step (or None)."""
    best = 0.0
    for row in sorted((r for r in rows if r.step == "rate"), key=lambda r: r.rate_asked):
        if row.behind:
            return best, row
        best = max(best, row.rate_posted)
    return best, None


def _fmt(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN: not measured


def _table(rows: list[ChatRow]) -> list[str]:
    lines = ["| step | asked/s | posted/s | chat p50 / p99 / max ms | state p50 / p99 ms | bytes per message "
             "(state) | bytes/viewer/s | delivered/expected | lost | twice | out of order | reconnected "
             "(resumed p99 ms) | server / client CPU % | behind |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        asked = "-" if r.step == "quiet" else f"{r.rate_asked:g}"
        lines.append(
            f"| {r.step} | {asked} | {r.rate_posted:.1f}{' (capped)' if r.posting_capped else ''} "
            f"| {_fmt(r.chat_p50_ms)} / {_fmt(r.chat_p99_ms)} / {_fmt(r.chat_max_ms)} "
            f"| {_fmt(r.state_p50_ms)} / {_fmt(r.state_p99_ms)} "
            f"| {_fmt(r.chat_bytes_per_message)} ({_fmt(r.state_bytes_per_version)}) | {_fmt(r.bytes_per_viewer_s)} "
            f"| {r.delivered}/{r.expected} | {r.lost} | {r.duplicated} | {r.out_of_order} "
            f"| {r.reconnected} ({_fmt(r.resumed_p99_ms)}) | {_fmt(r.server_cpu_pct)} / {_fmt(r.client_cpu_pct)} "
            f"| {'yes' if r.behind else 'no'} |")
    return lines


def reading(rows: list[ChatRow]) -> list[str]:
    """What the rows say, one sentence per transport, worded from the figures alone."""
    lines = []
    for transport in dict.fromkeys(r.transport for r in rows):
        mine = [r for r in rows if r.transport == transport]
        best, fell = sustained(mine)
        capped = [r for r in mine if r.posting_capped]
        if fell is not None:
            why = f"p99 {fell.chat_p99_ms:.0f} ms" if fell.chat_p99_ms > BEHIND_P99_MS else f"{fell.lost} lost"
            kept = f"kept up to {best:.1f} messages/s posted, fell" if best else "fell already"
            where = f"{kept} behind at {fell.rate_posted:.1f}/s ({why})"
        else:
            where = f"never fell behind: up to {best:.1f} messages/s posted"
        if capped:
            where += f"; the POST path capped the posting at {max(r.rate_posted for r in capped):.1f}/s"
        pairs = [r for r in mine if r.step == "rate" and r.chat_p99_ms == r.chat_p99_ms
                 and r.state_p99_ms == r.state_p99_ms]
        against = ""
        if pairs:
            low = min(pairs, key=lambda r: r.rate_asked)
            against = (f" At {low.rate_posted:.1f}/s chat p50/p99 {low.chat_p50_ms:.0f}/{low.chat_p99_ms:.0f} ms"
                       f" against state {low.state_p50_ms:.0f}/{low.state_p99_ms:.0f} ms on the same viewers.")
        lost, twice = sum(r.lost for r in mine), sum(r.duplicated for r in mine)
        late = sum(r.out_of_order for r in mine)
        again = sum(r.reconnected for r in mine)
        lines.append(f"- **{transport}**: {where}.{against} Across {again} reconnects: {lost} lost, {twice} twice,"
                     f" {late} out of order.")
    return lines


def write_folder(out: Path, rows: list[ChatRow], meta: dict[str, Any]) -> None:
    """results.csv, meta.json and report.md in ``out`` (the plot is the caller's)."""
    out.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in dataclasses.fields(ChatRow)]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(dataclasses.asdict(row))
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# Chat (the log) against state (the snapshot)", "", f"`{meta['command']}`", "",
             f"Commit {meta['commit']}, {meta['machine']}, load average at start {meta['load average at start']}"
             f", at end {meta.get('load average at end', '-')}.", "",
             "Chat latency: a viewer's receipt time minus the message's `ms` (its commit); state: receipt minus "
             "`changed_ms`, on the same viewers in the same step (the commands run beside the messages). "
             "Latencies of the viewers that stayed connected; the reconnected viewers' in brackets. "
             "Bytes per message: the bytes on the wire that carried it to one viewer (an SSE event, a WebSocket "
             "frame, a poll answer's share with its HTTP head); bytes/viewer/s: everything one viewer received "
             f"in the step, empty polls and heartbeats included. Behind: chat p99 over {BEHIND_P99_MS:.0f} ms or "
             "a message lost. No floor row: the floor server (loadtests.floor) does not speak chat; the state "
             "figures on the same viewers are the reference.", "", "## Reading", "", *reading(rows), ""]
    for transport in dict.fromkeys(r.transport for r in rows):
        lines += [f"## {transport}", "", *_table([r for r in rows if r.transport == transport]), ""]
    if (out / "log_against_snapshot.png").exists() or meta.get("plot"):
        lines += ["![log against snapshot](log_against_snapshot.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
