"""The lean client as the runner's load generator: loadtests.probe's viewers on locust's timeline.

    python -m loadtests.probe_driver --hosts http://127.0.0.1:8001 --room abc --transport sse \
        --viewers 2000 --procs 1 --idle-s 5 --busy-s 6 --command-rate 2 --stats-dir DIR

Viewers are loadtests.probe's asyncio protocols on uvloop (receipt time first, parsing after the
run), plus a short poller; they connect in batches, then the controller (this process) stays quiet
for ``--idle-s``, sends alternating seeks for ``--busy-s``, waits a tail, and every process writes a
``stats-<pid>.json`` that ``loadtests.metrics`` merges exactly like locust's: the report's figures
mean the same for both clients.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.metrics import Recorder, VersionTracker, bucket_of
from loadtests.probe import (
    _CHANGED,
    _VERSION,
    CONNECT_BATCH,
    LongPollViewer,
    SocketIoViewer,
    SseViewer,
    Viewer,
    WsViewer,
    split_responses,
)

# The server limits each client_id to 20 commands a second in a room (as the locustfile).
COMMANDS_PER_CLIENT_ID = 10.0
_ETAG = re.compile(rb"(?i)\r\netag: *([^\r\n]+)")


class Counting:
    """Counts bytes and requests per second for ``Recorder``, before the viewer sees the data."""

    counted: Recorder

    def data_received(self, data: bytes) -> None:
        self.counted.bytes_in[bucket_of(time.time())] += len(data)
        super().data_received(data)  # type: ignore[misc]

    def request(self) -> bytes:
        self.counted.requests[bucket_of(time.time())] += 1
        return super().request()  # type: ignore[misc]


class PollViewer(Viewer):
    """Short polling on a timer every ``interval`` seconds with If-None-Match (as locust's PollViewer)."""

    interval = 1.0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.buffer = b""
        self.etag = b""
        self.next_at = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        loop = asyncio.get_running_loop()
        # Browser tabs open at random moments: spread the polls over the interval.
        self.next_at = loop.time() + random.uniform(0.0, self.interval)
        loop.call_at(self.next_at, self._poll)

    def _poll(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.request())

    def request(self) -> bytes:
        etag = b"If-None-Match: " + self.etag + b"\r\n" if self.etag else b""
        return (f"GET /api/rooms/{self.slug}/state HTTP/1.1\r\nHost: {self.host}\r\n".encode() + etag + b"\r\n")

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        responses, self.buffer = split_responses(self.buffer + data)
        for head, body in responses:
            if head.startswith(b"HTTP/1.1 200"):
                etag = _ETAG.search(head)
                self.etag = etag.group(1).strip() if etag else b""
                self.got(t_ms, body)
            loop = asyncio.get_running_loop()
            self.next_at = max(self.next_at + self.interval, loop.time())
            loop.call_at(self.next_at, self._poll)


BASES: dict[str, type[Viewer]] = {"sse": SseViewer, "ws": WsViewer, "longpoll": LongPollViewer, "poll": PollViewer,
                                  "socketio": SocketIoViewer}


def viewer_class(transport: str) -> type[Viewer]:
    return type(f"Counted{BASES[transport].__name__}", (Counting, BASES[transport]), {})


def record(viewers: list[Viewer], rec: Recorder) -> None:
    """Parse what every viewer received (after the run) into ``rec``: one version tracker per viewer."""
    for viewer in viewers:
        if isinstance(viewer, SseViewer):
            viewer.finish()
        tracker = VersionTracker()
        for t_ms, message in viewer.messages:
            version, changed = _VERSION.search(message), _CHANGED.search(message)
            if version is None or changed is None:
                continue  # not a state (presence, chat)
            rec.delivery(t_ms, float(changed.group(1)), tracker.observe(int(version.group(1))))
        rec.missed += tracker.missed
        rec.out_of_order += tracker.out_of_order
        rec.duplicates += tracker.duplicates


async def _viewers(hosts: list[tuple[str, int]], first: int, slug: str, transport: str, count: int,
                   ramp_s: float, interval: float, pipe: Any) -> Recorder:
    loop = asyncio.get_running_loop()
    rec = Recorder()
    cls = viewer_class(transport)
    cls.counted = rec  # type: ignore[attr-defined]
    cls.interval = interval  # type: ignore[attr-defined]
    viewers: list[Viewer] = []
    pause = ramp_s / max(1, math.ceil(count / CONNECT_BATCH))
    for offset in range(0, count, CONNECT_BATCH):
        batch = []
        for index in range(offset, min(offset + CONNECT_BATCH, count)):
            host, port = hosts[(first + index) % len(hosts)]
            viewer = cls(f"{host}:{port}", slug, loop.create_future())
            batch.append(loop.create_connection(lambda v=viewer: v, host, port))
            viewers.append(viewer)
        results = await asyncio.gather(*batch, return_exceptions=True)
        rec.errors += sum(isinstance(result, Exception) for result in results)
        await asyncio.sleep(pause)
    results = await asyncio.gather(*(asyncio.wait_for(v.ready, 60) for v in viewers), return_exceptions=True)
    rec.errors += sum(isinstance(result, Exception) for result in results)
    started = time.time()
    for index in range(len(viewers)):
        rec.viewer_started(f"{os.getpid()}-{index}", started)
    pipe.send("ready")
    await loop.run_in_executor(None, pipe.recv)
    ended = time.time()
    for viewer in viewers:
        if viewer.transport:
            viewer.transport.close()
    rec.close_viewers(ended)
    record(viewers, rec)
    return rec


def _client_main(hosts: list[tuple[str, int]], first: int, slug: str, transport: str, count: int, ramp_s: float,
                 interval: float, stats_dir: str, pipe: Any) -> None:
    import uvloop

    rec = uvloop.run(_viewers(hosts, first, slug, transport, count, ramp_s, interval, pipe))
    rec.dump(Path(stats_dir) / f"stats-{os.getpid()}.json")
    pipe.send("done")


def control(hosts: list[tuple[str, int]], slug: str, rate: float, busy_s: float, rec: Recorder) -> None:
    """Alternating seeks at ``rate`` a second for ``busy_s``, as locust's Controller, over one keep-alive
    connection per host; with several hosts (a floor split over processes) each command goes to all."""
    connections = [http.client.HTTPConnection(*host, timeout=30) for host in hosts]
    client_ids = max(1, math.ceil(rate / COMMANDS_PER_CLIENT_ID))
    began = next_at = time.monotonic()
    for number in itertools.count():
        if time.monotonic() - began >= busy_s:
            break
        sent = time.time()
        body = {"type": "seek", "client_id": f"lt-controller-{number % client_ids}", "client_ms": sent * 1000.0,
                "position": 10.0 + 10.0 * (number % 2)}
        statuses = []
        for index, host in enumerate(hosts):
            connection = connections[index]
            try:
                connection.request("POST", f"/api/rooms/{slug}/commands", body=json.dumps(body),
                                   headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"})
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            except (OSError, http.client.HTTPException):
                statuses.append(0)
                connection.close()
                connections[index] = http.client.HTTPConnection(*host, timeout=30)
        rec.commands.append((sent, max(statuses) if min(statuses) else 0))
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    for connection in connections:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", required=True, help="comma-separated server URLs; viewers spread over them")
    parser.add_argument("--room", required=True)
    parser.add_argument("--transport", choices=sorted(BASES), required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--ramp-s", type=float, default=2.0)
    parser.add_argument("--idle-s", type=float, default=3.0, help="quiet seconds after every viewer connected")
    parser.add_argument("--busy-s", type=float, default=6.0)
    parser.add_argument("--tail-s", type=float, default=2.0)
    parser.add_argument("--command-rate", type=float, default=2.0)
    parser.add_argument("--command-host", help="where commands go (default: the first host)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--stats-dir", required=True)
    parser.add_argument("-t", help="the planned length, for the runner's time-out (not used here)")
    args = parser.parse_args(argv)
    hosts = [(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80) for url in args.hosts.split(",")]
    context = multiprocessing.get_context("spawn")
    pipes, clients = [], []
    first = 0
    for index in range(args.procs):
        count = args.viewers // args.procs + (index < args.viewers % args.procs)
        parent, child = context.Pipe()
        process = context.Process(target=_client_main, args=(hosts, first, args.room, args.transport, count,
                                                              args.ramp_s, args.poll_interval, args.stats_dir, child))
        process.start()
        pipes.append(parent)
        clients.append(process)
        first += count
    for pipe in pipes:
        pipe.recv()
    rec = Recorder()
    time.sleep(args.idle_s)
    if args.command_rate > 0 and args.busy_s > 0:
        targets = [urlsplit(url) for url in args.command_host.split(",")] if args.command_host else []
        control([(t.hostname or "127.0.0.1", t.port or 80) for t in targets] or hosts[:1], args.room,
                args.command_rate, args.busy_s, rec)
    time.sleep(args.tail_s)
    for pipe in pipes:
        pipe.send("stop")
    for pipe in pipes:
        pipe.recv()
    for process in clients:
        process.join(timeout=30)
    rec.dump(Path(args.stats_dir) / f"stats-{os.getpid()}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
