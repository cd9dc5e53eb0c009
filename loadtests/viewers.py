"""One locust viewer per transport, each holding its connection the way a browser would.

Every viewer takes the receipt time first and parses afterwards (../shared/BENCHMARKING.md),
records into the process's ``Recorder`` and fires a ``PROPAGATION`` event per new version
so that locust's UI and CSV show propagation latency beside the HTTP requests.
Imported only by the locustfile, in locust's own (gevent) process.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from http import HTTPStatus
from typing import Any, ClassVar

import gevent
import websocket
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.metrics import Recorder, VersionTracker, http_head_bytes, ws_frame_bytes

# One recorder per locust process; the locustfile dumps it when the test stops.
recorder = Recorder()
_viewer_ids = itertools.count()
# After a failed request or a dropped stream a browser would back off a little before retrying.
RETRY_AFTER_S = 1.0


def options(environment: Any) -> Any:
    return environment.parsed_options


def base_urls(environment: Any, fallback: str) -> list[str]:
    hosts = getattr(options(environment), "vsync_hosts", "") or ""
    return [host.rstrip("/") for host in hosts.split(",") if host.strip()] or [fallback.rstrip("/")]


def head_bytes(response: Any) -> int:
    code = response.status_code
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ""
    headers = list(response.headers.items()) if response.headers is not None else []
    return http_head_bytes(len(f"HTTP/1.1 {code} {phrase}"), headers)


class Viewer(FastHttpUser):
    """Shared by the four viewers: which server to use, and what to do with a received state."""

    abstract = True
    transport: ClassVar[str] = ""
    wait_time = constant(0)
    # Longer than the long-poll timeout and the SSE keep-alive interval: silence is normal here.
    network_timeout = 90.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        number = next(_viewer_ids)
        urls = base_urls(environment, self.host or "http://127.0.0.1:8000")
        self.base = urls[number % len(urls)]
        self.viewer_id = f"{os.getpid()}-{number}"
        self.room = options(environment).vsync_room
        self.tracker = VersionTracker()

    @task
    def hold(self) -> None:
        try:
            self.watch()
        except Exception as exc:  # a dropped connection, a timeout, a bad frame: count it, retry like a browser
            recorder.reconnects += 1
            self.failed(f"{type(exc).__name__}: {exc}")

    def watch(self) -> None:
        raise NotImplementedError

    def on_start(self) -> None:
        recorder.viewer_started(self.viewer_id, time.time())

    def on_stop(self) -> None:
        recorder.viewer_stopped(self.viewer_id, time.time())

    def deliver(self, receive_ms: float, state: dict[str, Any], nbytes: int) -> None:
        tracker = self.tracker
        missed, duplicates = tracker.missed, tracker.duplicates
        kind = tracker.observe(int(state["version"]))
        recorder.missed += tracker.missed - missed
        recorder.duplicates += tracker.duplicates - duplicates
        latency = recorder.delivery(receive_ms, float(state["changed_ms"]), kind)
        if kind == "old":
            recorder.out_of_order += 1
            self.fire("OUT_OF_ORDER", 0.0, nbytes, AssertionError(f"version {state['version']} after newer"))
        elif latency is not None:
            self.fire("PROPAGATION", latency, nbytes)

    def fire(self, request_type: str, response_time: float, length: int, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type=request_type, name=self.transport,
                                             response_time=response_time, response_length=length,
                                             exception=exception, context={})

    def failed(self, what: str) -> None:
        recorder.errors += 1
        self.fire("ERROR", 0.0, 0, RuntimeError(what))
        gevent.sleep(RETRY_AFTER_S)


class PollViewer(Viewer):
    """Short polling at ``--poll-interval`` seconds with ``If-None-Match``, like a browser's timer."""

    transport = "poll"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.etag: str | None = None

    def watch(self) -> None:
        interval = float(options(self.environment).poll_interval)
        url = f"{self.base}/api/rooms/{self.room}/state"
        # Browser tabs open at random moments: spread the polls over the interval.
        gevent.sleep(random.uniform(0.0, interval))
        while True:
            started = time.monotonic()
            headers = {"If-None-Match": self.etag} if self.etag else {}
            response = self.client.get(url, headers=headers, name="poll: GET state")
            receive_ms = time.time() * 1000.0
            body = response.content or b""
            recorder.traffic(receive_ms / 1000.0, head_bytes(response) + len(body) if response.status_code else 0, 1)
            if response.status_code == 200:
                self.etag = response.headers.get("ETag")
                self.deliver(receive_ms, json.loads(body), len(body))
            elif response.status_code != 304:
                self.failed(f"poll answered {response.status_code}")
                continue
            gevent.sleep(max(0.0, interval - (time.monotonic() - started)))


class LongPollViewer(Viewer):
    """Long polling with ``since``: one request outstanding at all times."""

    transport = "longpoll"

    def watch(self) -> None:
        timeout = float(options(self.environment).longpoll_timeout)
        since = 0
        while True:
            url = f"{self.base}/api/rooms/{self.room}/poll?since={since}&timeout={timeout:g}"
            response = self.client.get(url, name="longpoll: GET poll")
            receive_ms = time.time() * 1000.0
            body = response.content or b""
            recorder.traffic(receive_ms / 1000.0, head_bytes(response) + len(body) if response.status_code else 0, 1)
            if response.status_code == 200:
                state = json.loads(body)
                self.deliver(receive_ms, state, len(body))
                since = max(since, int(state["version"]))
            elif response.status_code != 204:
                self.failed(f"long poll answered {response.status_code}")


class SSEViewer(Viewer):
    """EventSource: one streaming response, resumed with ``Last-Event-ID`` after a drop."""

    transport = "sse"

    def watch(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.tracker.last_version is not None:
            headers["Last-Event-ID"] = str(self.tracker.last_version)
        response = self.client.get(f"{self.base}/api/rooms/{self.room}/events", headers=headers, stream=True,
                                   name="sse: GET events")
        now = time.time()
        if response.status_code != 200:
            recorder.traffic(now, head_bytes(response) if response.status_code else 0, 1)
            self.failed(f"events answered {response.status_code}")
            return
        recorder.traffic(now, head_bytes(response), 1)
        stream = response._response
        data: list[bytes] = []
        event_ms: float | None = None
        while True:
            line = stream.readline(b"\n")
            receive_ms = time.time() * 1000.0
            if not line:
                break
            recorder.traffic(receive_ms / 1000.0, len(line))
            if line in (b"\n", b"\r\n"):
                if data and event_ms is not None:
                    payload = b"\n".join(data)
                    self.deliver(event_ms, json.loads(payload), len(payload))
                data, event_ms = [], None
                continue
            if event_ms is None:
                event_ms = receive_ms  # the event's first line is its receipt
            if line.startswith(b"data:"):
                data.append(line[5:].strip())
        recorder.reconnects += 1
        self.fire("RECONNECT", 0.0, 0)


class WebSocketViewer(Viewer):
    """A WebSocket that receives ``{"type": "state"}`` messages; reconnects after a drop."""

    transport = "ws"
    path = "/ws/rooms/{room}"
    event = "WS"  # the name of the handshake in locust's statistics
    label = "websocket"

    def watch(self) -> None:
        url = (self.base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
               + self.path.format(room=self.room))
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(url, timeout=self.network_timeout, skip_utf8_validation=True,
                                             enable_multithread=False)
        except (OSError, websocket.WebSocketException) as exc:
            recorder.traffic(time.time(), 0, 1)
            self.failed(f"{self.label} connect failed: {exc}")
            return
        handshake = http_head_bytes(len("HTTP/1.1 101 Switching Protocols"), (ws.getheaders() or {}).items())
        recorder.traffic(time.time(), handshake, 1)
        self.fire(self.event, (time.perf_counter() - started) * 1000.0, handshake)
        try:
            while True:
                # control_frame=True: pings are answered as before, and counted as the bytes they are.
                opcode, payload = ws.recv_data(control_frame=True)
                receive_ms = time.time() * 1000.0
                recorder.traffic(receive_ms / 1000.0, ws_frame_bytes(len(payload)))
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self.received(ws, payload, receive_ms)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.close()
        recorder.reconnects += 1
        self.fire("RECONNECT", 0.0, 0)

    def received(self, ws: websocket.WebSocket, payload: bytes, receive_ms: float) -> None:
        message = json.loads(payload)
        if message.get("type") == "state":
            self.deliver(receive_ms, message["state"], len(payload))


class SocketIoViewer(WebSocketViewer):
    """Socket.IO v5 over Engine.IO v4's WebSocket (loadtests.socketio_app): ``42["state",{...}]`` events,
    Engine.IO's ping ``2`` answered ``3``; reconnects after a drop."""

    transport = "socketio"
    path = "/socket.io/?EIO=4&transport=websocket&room={room}"
    event = "SOCKETIO"
    label = "socket.io"

    def received(self, ws: websocket.WebSocket, payload: bytes, receive_ms: float) -> None:
        if payload.startswith(b"42"):
            event, *args = json.loads(payload[2:])
            if event == "state" and args:
                self.deliver(receive_ms, args[0], len(payload))
        elif payload == b"2":
            ws.send("3")
        elif payload.startswith(b"0"):
            ws.send("40")  # Engine.IO is open: connect to the default namespace
