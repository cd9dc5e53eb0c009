"""vsync's locust scenarios: one viewer class per transport and a controller that sends commands.

Web UI:   locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --class-picker
Headless: locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 51 -r 25 -t 20s \
              SSEViewer Controller
The runner (``python -m loadtests run``) starts servers and locust for you and writes reports.
Never import Django here: gevent must patch ``ssl`` before anything imports it.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.viewers import (
    LongPollViewer,
    PollViewer,
    SocketIoViewer,
    SSEViewer,
    Viewer,
    WebSocketViewer,
    recorder,
)

__all__ = ["Controller", "LongPollViewer", "PollViewer", "SSEViewer", "SocketIoViewer", "Viewer", "WebSocketViewer"]

# The server limits each client_id to 20 commands a second in a room; stay well below it.
COMMANDS_PER_CLIENT_ID = 10.0


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("vsync")
    group.add_argument("--vsync-room", default="demo", help="room slug every user joins")
    group.add_argument("--vsync-hosts", default="", help="comma-separated server URLs; viewers spread over them")
    group.add_argument("--vsync-command-host", default="",
                       help="where the controller sends commands (default: the first host); the runner sends them "
                            "straight to the server so that a shaped network does not cap the command rate")
    group.add_argument("--command-rate", type=float, default=2.0, help="controller commands per second")
    group.add_argument("--idle-s", type=float, default=0.0,
                       help="seconds from the controller's start (ramp-up included) before the first command")
    group.add_argument("--busy-s", type=float, default=0.0, help="seconds of commands, then quiet; 0 = until stopped")
    group.add_argument("--poll-interval", type=float, default=1.0, help="short-poll interval, seconds")
    group.add_argument("--longpoll-timeout", type=float, default=25.0, help="long-poll timeout, seconds")
    group.add_argument("--stats-dir", default="", help="each locust process writes stats-<pid>.json here")


class Controller(FastHttpUser):
    """Sends alternating seeks at ``--command-rate`` to the first host, stamped with wall-clock client_ms."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        hosts = [h for h in (opts.vsync_hosts or "").split(",") if h.strip()]
        self.base = (opts.vsync_command_host or (hosts[0] if hosts else self.host)
                     or "http://127.0.0.1:8000").rstrip("/")
        self.url = f"{self.base}/api/rooms/{opts.vsync_room}/commands"
        self.rate = max(float(opts.command_rate), 0.01)
        self.client_ids = max(1, math.ceil(self.rate / COMMANDS_PER_CLIENT_ID))
        self.sequence = itertools.count()
        gevent.sleep(float(opts.idle_s))
        self.began = time.monotonic()
        self.until = self.began + float(opts.busy_s) if opts.busy_s else math.inf
        self.next_at = self.began

    @task
    def command(self) -> None:
        if time.monotonic() >= self.until or float(self.environment.parsed_options.command_rate) <= 0:
            gevent.sleep(1.0)
            return
        number = next(self.sequence)
        sent = time.time()
        body = {"type": "seek", "client_id": f"lt-controller-{number % self.client_ids}",
                "client_ms": sent * 1000.0, "position": 10.0 + 10.0 * (number % 2)}
        response = self.client.post(self.url, json=body, name="controller: POST command")
        recorder.commands.append((sent, response.status_code))
        self.next_at += 1.0 / self.rate
        gevent.sleep(max(0.0, self.next_at - time.monotonic()))


@events.test_start.add_listener
def reset_recorder(environment: Any, **_: Any) -> None:
    recorder.__init__()  # a fresh test in the web UI starts from zero


@events.test_stop.add_listener
def dump_on_stop(environment: Any, **_: Any) -> None:
    dump(environment)


@events.quitting.add_listener
def dump_on_quit(environment: Any, **_: Any) -> None:
    dump(environment)


def dump(environment: Any) -> None:
    stats_dir = getattr(environment.parsed_options, "stats_dir", "") if environment.parsed_options else ""
    if not stats_dir or not (recorder.viewers or recorder.commands):
        return
    recorder.close_viewers(time.time())
    recorder.dump(Path(stats_dir) / f"stats-{os.getpid()}.json")
