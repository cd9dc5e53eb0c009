"""The log against the snapshot: chat fan-out beside state fan-out, N viewers of one room, every transport.

    python -m loadtests.chat_probe --transports poll,longpoll,sse,ws --viewers 200 --rates 5,20,50 \\
        --seconds 10 --out /tmp/chat
    python -m loadtests.chat_probe --transport sse --viewers 1000 --messages 20 --commands 10

Per transport a fresh server (daphne, SQLite, VSYNC_ADDRESS_LIMITS=off) and N viewers
(loadtests.chat_viewers, uvloop, over ``--procs`` client processes) doing what the page
does on that transport. Each ``--rates`` step posts chat messages at that rate for
``--seconds`` and, beside them, commands at ``--command-rate``, so chat and state are
measured at the same load on the same viewers; half way through the step a share of the
viewers (``--drop-share``) lose their connections, stay away ``--drop-gap`` seconds and
resume as the contract says; afterwards every viewer's log is checked: nothing lost,
nothing twice (loadtests.chat_report). ``--messages``/``--commands`` first: a quiet step,
messages then commands ``--interval`` apart. ``--out``: results.csv, meta.json, report.md
and log_against_snapshot.png (loadtests.plots).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import multiprocessing
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadtests import chat_report, chat_viewers, probe, provenance
from loadtests.chat_report import ChatRow, Step

POSTERS = 4  # threads posting chat: each POST waits for its answer, so one thread alone caps the rate


@dataclass
class Options:
    procs: int = 2
    serve: str = "vsync"
    messages: int = 0
    commands: int = 0
    interval: float = 0.5
    command_rate: float = 2.0
    drop_share: float = 0.2
    drop_gap_s: float = 0.5
    settle_s: float = 20.0


def _post_chat(port: int, slug: str, index: int) -> int | None:
    """The new message's id, or None when the server refused or dropped the POST (counted as a post error)."""
    try:
        status, body = probe._request(port, "POST", f"/api/rooms/{slug}/chat",
                                      {"client_id": f"probe-{index}", "text": f"probe message {index} " + "x" * 40})
    except (OSError, http.client.HTTPException):
        return None
    return body["message"]["id"] if status == 201 else None


def _command(port: int, slug: str, index: int) -> int | None:
    try:
        status, body = probe._request(port, "POST", f"/api/rooms/{slug}/commands", {
            "type": "seek", "client_id": f"probe-c{index}", "client_ms": time.time() * 1000, "position": index})
    except (OSError, http.client.HTTPException):
        return None
    return body["state"]["version"] if status == 200 else None


def _paced(action: Any, rate: float, seconds: float, first: int, threads: int) -> tuple[list[int], int]:
    """Call ``action(first + n)`` at ``rate`` a second for ``seconds`` over ``threads``: (results, failures).

    None started after ``seconds``: when the server answers slower than asked, fewer are made, not a longer step.
    """
    total = int(rate * seconds)
    results: list[int] = []
    failures = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def worker(offset: int) -> None:
        for n in range(offset, total, threads):
            delay = started + n / rate - time.monotonic()
            if time.monotonic() - started >= seconds:
                return
            if delay > 0:
                time.sleep(delay)
            result = action(first + n)
            with lock:
                if result is None:
                    failures[0] += 1
                else:
                    results.append(result)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(min(threads, max(total, 1)))]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sorted(results), failures[0]


class Run:
    """One transport's run: its server, its client processes, its steps."""

    def __init__(self, transport: str, viewers: int, options: Options, port: int, slug: str,
                 server: psutil.Process) -> None:
        self.transport, self.viewers, self.options, self.port, self.slug = transport, viewers, options, port, slug
        self.server = server
        context = multiprocessing.get_context("spawn")
        self.counts = [viewers // options.procs + (i < viewers % options.procs) for i in range(options.procs)]
        self.pipes, self.clients = [], []
        for count in self.counts:
            parent, child = context.Pipe()
            process = context.Process(target=chat_viewers.client_main, args=(port, slug, transport, count, child))
            process.start()
            self.pipes.append(parent)
            self.clients.append(process)
        self.connected = sum(pipe.recv()[1] for pipe in self.pipes)
        self.watched = [psutil.Process(process.pid) for process in self.clients]

    def _measured(self, step: Step, action: Any) -> Step:
        server_cpu = probe.cpu_seconds([self.server], children=True)
        client_cpu, started = probe.cpu_seconds(self.watched, children=True), time.monotonic()
        step.started_ms = time.time() * 1000
        action(step)
        step.ended_ms = time.time() * 1000
        elapsed = time.monotonic() - started
        step.server_cpu_pct = (probe.cpu_seconds([self.server], children=True) - server_cpu) / elapsed * 100
        step.client_cpu_pct = (probe.cpu_seconds(self.watched, children=True) - client_cpu) / elapsed * 100
        return step

    def quiet(self) -> Step:
        def act(step: Step) -> None:
            interval = self.options.interval
            for index in range(self.options.messages):
                message_id = _post_chat(self.port, self.slug, index)
                step.chat_ids += [message_id] if message_id is not None else []
                step.post_errors += message_id is None
                time.sleep(interval)
            for index in range(self.options.commands):
                version = _command(self.port, self.slug, index)
                step.versions += [version] if version is not None else []
                time.sleep(interval)
            step.rate_posted = 1 / interval if step.chat_ids else 0.0

        return self._measured(Step("quiet", 0.0, 0.0, 0.0, [], [], 0.0), act)

    def rate(self, index: int, rate: float, seconds: float) -> Step:
        def act(step: Step) -> None:
            first = (index + 1) * 100_000
            commands: list[tuple[list[int], int]] = []
            command_thread = threading.Thread(target=lambda: commands.append(_paced(
                lambda n: _command(self.port, self.slug, n), self.options.command_rate, seconds, first, 1)))
            dropper = threading.Timer(seconds / 2, self._drop, args=(index, step))
            started = time.monotonic()
            command_thread.start()
            dropper.start()
            step.chat_ids, step.post_errors = _paced(lambda n: _post_chat(self.port, self.slug, n), rate, seconds,
                                                     first, POSTERS)
            step.rate_posted = len(step.chat_ids) / max(seconds, time.monotonic() - started)
            command_thread.join()
            dropper.join()
            step.versions = commands[0][0] if commands else []

        return self._measured(Step("rate", rate, 0.0, 0.0, [], [], 0.0), act)

    def _drop(self, index: int, step: Step) -> None:
        """Drop ``drop_share`` of the seats (a different choice each step) for ``drop_gap_s``."""
        share = self.options.drop_share
        if share <= 0:
            return
        chosen = random.Random(index).sample(range(self.viewers), max(1, round(share * self.viewers)))
        step.dropped = set(chosen)
        offset = 0
        for pipe, count in zip(self.pipes, self.counts, strict=True):
            pipe.send(("drop", [i - offset for i in chosen if offset <= i < offset + count], self.options.drop_gap_s))
            offset += count

    def finish(self, last_id: int) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(("settle", last_id, self.options.settle_s))
        for pipe in self.pipes:
            pipe.recv()
        for pipe in self.pipes:
            pipe.send(("stop",))
        seats: list[dict[str, Any]] = []
        for pipe in self.pipes:
            seats += pipe.recv()[1]
        for process in self.clients:
            process.join(timeout=30)
        return seats


def _stop(server: subprocess.Popen[bytes]) -> None:
    # Measured: a daphne behind 200 short pollers of /chat (Django, one thread) still had not exited
    # 20 s after SIGTERM, working through the requests it had queued; its figures are in by then.
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def run_transport(transport: str, viewers: int, rates: list[float], seconds: float, options: Options) -> list[ChatRow]:
    """One transport on a fresh server: the quiet step (if asked) and each rate step, one row each."""
    with tempfile.TemporaryDirectory(prefix="chat-probe-") as data_dir:
        port = probe._free_port()
        server = probe.start_server(options.serve, port, Path(data_dir))
        try:
            status, state = probe._request(port, "POST", "/api/rooms", {"name": f"chat probe {uuid.uuid4().hex[:6]}"})
            assert status == 201, state
            slug = state["room"]
            # A message before the viewers join: every stream then has a chat position from the start.
            _post_chat(port, slug, 0)
            one = Run(transport, viewers, options, port, slug, psutil.Process(server.pid))
            time.sleep(1.0)
            steps = [one.quiet()] if options.messages or options.commands else []
            steps += [one.rate(index, rate, seconds) for index, rate in enumerate(rates)]
            seats = one.finish(max((i for step in steps for i in step.chat_ids), default=0))
        finally:
            _stop(server)
    return [chat_report.summarise(transport, viewers, step, seats) for step in steps]


def _meta(command: str, transports: list[str], viewers: int, rates: list[float], seconds: float,
          options: Options) -> dict[str, Any]:
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
            "commit": provenance.commit(),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, Python "
                       f"{platform.python_version()}",
            "load average at start": provenance.load_average(),
            "transports": transports, "viewers": viewers, "rates asked per s": rates, "seconds per step": seconds,
            "server": f"{options.serve} (one process, SQLite, in-memory layer, VSYNC_ADDRESS_LIMITS=off)",
            "client processes": options.procs, "commands per s beside the messages": options.command_rate,
            "dropped per step": f"{options.drop_share:.0%} of the viewers, half way, away {options.drop_gap_s} s",
            "short-poll interval s": chat_viewers.POLL_INTERVAL_S,
            "behind": f"chat p99 > {chat_report.BEHIND_P99_MS:.0f} ms or a message lost"}


def run(transports: list[str], viewers: int, rates: list[float], seconds: float, out: Path | str | None,
        command: str | None = None, **settings: Any) -> list[ChatRow]:
    """Every transport in turn; with ``out``, its results folder and plot. ``settings``: Options' fields."""
    options = Options(**settings)
    command = command or (f"loadtests.chat_probe.run({transports!r}, {viewers}, {rates!r}, {seconds}, {str(out)!r}"
                          + "".join(f", {k}={v!r}" for k, v in settings.items()) + ")")
    meta = _meta(command, transports, viewers, rates, seconds, options)
    rows: list[ChatRow] = []
    for transport in transports:
        rows += run_transport(transport, viewers, rates, seconds, options)
    meta["load average at end"] = provenance.load_average()
    if out is not None:
        import matplotlib.pyplot as plt

        from loadtests import plots

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        figure = plots.log_against_snapshot(rows)
        if figure is not None:
            figure.savefig(out / "log_against_snapshot.png", dpi=110, bbox_inches="tight")
            plt.close(figure)
        chat_report.write_folder(out, rows, meta)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Chat (the log) against state (the snapshot) on every transport.")
    parser.add_argument("--transports", type=lambda text: [t for t in text.split(",") if t], default=None,
                        help="comma-separated, of " + ",".join(chat_viewers.TRANSPORTS))
    parser.add_argument("--transport", choices=chat_viewers.TRANSPORTS, help="one transport (as --transports X)")
    parser.add_argument("--serve", choices=["vsync", "vsync-uvicorn"], default="vsync")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--messages", type=int, default=0, help="the quiet step: messages --interval apart")
    parser.add_argument("--commands", type=int, default=0, help="the quiet step: then commands --interval apart")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",") if r], default=[5.0, 20.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--command-rate", type=float, default=2.0, help="commands per second in each rate step")
    parser.add_argument("--drop-share", type=float, default=0.2, help="viewers dropped half way through each step")
    parser.add_argument("--drop-gap", type=float, default=0.5, help="seconds a dropped viewer stays away")
    parser.add_argument("--out", type=Path, help="results folder (results.csv, meta.json, report.md, the plot)")
    args = parser.parse_args(argv)
    transports = args.transports or [args.transport or "sse"]
    unknown = set(transports) - set(chat_viewers.TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports: {', '.join(sorted(unknown))}")
    command = "python -m loadtests.chat_probe " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = run(transports, args.viewers, args.rates, args.seconds, args.out, command=command, procs=args.procs,
               serve=args.serve, messages=args.messages, commands=args.commands, interval=args.interval,
               command_rate=args.command_rate, drop_share=args.drop_share, drop_gap_s=args.drop_gap)
    for line in chat_report.reading(rows):
        print(line)
    for transport in transports:
        print(f"\n## {transport}\n")
        print("\n".join(chat_report._table([r for r in rows if r.transport == transport])))
    if args.out:
        print(f"\nwritten: {args.out}/report.md")


if __name__ == "__main__":
    main()
