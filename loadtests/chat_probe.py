"""Chat fan-out beside state fan-out: N viewers of one room on one transport, same server, same run.

    python -m loadtests.chat_probe --transport sse --viewers 1000 --messages 20 --commands 10
    python -m loadtests.chat_probe --transport longpoll --viewers 200 --rates 5,20,50

Chat latency is the viewer's receipt time minus the message's ``ms`` (its commit time);
state latency is receipt minus the version's ``changed_ms`` (loadtests.probe's figure), both
measured on the same viewers of the same server, one after the other, so that the shared
machine's load is the same for both. ``--rates``: messages posted at each rate for
``--seconds``; delivery "falls behind" when the p99 of that step grows past 1 s or messages
go missing. Bytes per message: what one viewer receives for one message. Viewers use
loadtests.probe's lean asyncio protocols; the server runs with VSYNC_ADDRESS_LIMITS=off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from loadtests import probe

_EVENT = re.compile(rb"(?:id: [0-9.]+\n)?event: (state|chat)\ndata: ([^\n]*)\n\n")


class SseChatViewer(probe.SseViewer):
    def finish(self) -> None:
        stream = b"".join(self.chunks)
        for match in _EVENT.finditer(stream):
            index = probe.bisect.bisect_left(self.ends, match.end())
            self.messages.append((self.times[index], match.group()))


class ChatPollViewer(probe.Viewer):
    """``GET .../chat?after=<last>&timeout=55`` again after each answer (one connection, keep-alive)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.buffer, self.after = b"", 0
        self.ready.set_result(None)

    def request(self) -> bytes:
        return (f"GET /api/rooms/{self.slug}/chat?after={self.after}&timeout=55 HTTP/1.1\r\n"
                f"Host: {self.host}\r\n\r\n").encode()

    def data_received(self, data: bytes) -> None:
        t_ms = time.time() * 1000
        responses, self.buffer = probe.split_responses(self.buffer + data)
        for head, body in responses:
            if head.startswith(b"HTTP/1.1 200"):
                for message in json.loads(body)["messages"]:
                    self.messages.append((t_ms, b"chat:" + json.dumps(message).encode()))
                    self.after = max(self.after, message["id"])
            if self.transport:
                self.transport.write(self.request())


VIEWERS = {"sse": SseChatViewer, "ws": probe.WsViewer, "longpoll": ChatPollViewer}


def _frame_head(size: int) -> int:
    """Bytes of an unmasked WebSocket frame's head for a payload of ``size`` (RFC 6455 5.2)."""
    return 2 if size < 126 else 4 if size < 1 << 16 else 10


def _classify(raw: bytes) -> tuple[str, int, float, int] | None:
    """(kind, key, sent_ms, size) of one received message: chat (id, ms) or state (version, changed_ms)."""
    size = len(raw)
    if raw.startswith(b"chat:"):
        message = json.loads(raw[5:])
        return "chat", message["id"], message["ms"], size
    if raw.startswith(b"id:") or raw.startswith(b"event:"):
        match = _EVENT.match(raw)
        if match is None:
            return None
        data = json.loads(match.group(2))
        if match.group(1) == b"chat":
            return "chat", data["id"], data["ms"], size
        return "state", data["version"], data["changed_ms"], size
    message = json.loads(raw)
    if message.get("type") == "chat":
        return "chat", message["message"]["id"], message["message"]["ms"], size + _frame_head(size)
    if message.get("type") == "state":
        return "state", message["state"]["version"], message["state"]["changed_ms"], size + _frame_head(size)
    return None


async def _viewers(port: int, slug: str, transport: str, count: int, pipe: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    viewers: list[probe.Viewer] = []
    for offset in range(0, count, probe.CONNECT_BATCH):
        batch = []
        for _ in range(min(probe.CONNECT_BATCH, count - offset)):
            viewer = VIEWERS[transport](f"127.0.0.1:{port}", slug, loop.create_future())
            batch.append(loop.create_connection(lambda v=viewer: v, "127.0.0.1", port))
            viewers.append(viewer)
        await asyncio.gather(*batch, return_exceptions=True)
    results = await asyncio.gather(*(asyncio.wait_for(v.ready, 60) for v in viewers), return_exceptions=True)
    pipe.send(("ready", sum(not isinstance(result, Exception) for result in results)))
    await loop.run_in_executor(None, pipe.recv)
    out: dict[str, list[tuple[int, float, int]]] = {"chat": [], "state": []}
    for viewer in viewers:
        if isinstance(viewer, SseChatViewer):
            viewer.finish()
        for t_ms, raw in viewer.messages:
            kind = _classify(raw)
            if kind is not None:
                out[kind[0]].append((kind[1], t_ms - kind[2], kind[3]))
        if viewer.transport:
            viewer.transport.close()
    return out


def _client_main(port: int, slug: str, transport: str, count: int, pipe: Any) -> None:
    import uvloop

    pipe.send(("results", uvloop.run(_viewers(port, slug, transport, count, pipe))))


def _post_chat(port: int, slug: str, index: int) -> int:
    status, body = probe._request(port, "POST", f"/api/rooms/{slug}/chat",
                                  {"client_id": f"probe-{index}", "text": f"probe message {index} " + "x" * 40})
    assert status == 201, body
    return body["message"]["id"]


def _pct(values: list[float], q: float) -> float:
    return values[max(0, int(len(values) * q) - 1)] if values else -1.0


def _summary(name: str, per: list[tuple[int, float, int]], keys: list[int], connected: int) -> str:
    wanted = set(keys)
    rows = [row for row in per if row[0] in wanted]
    latencies = sorted(row[1] for row in rows)
    sizes = [row[2] for row in rows]
    p50 = statistics.median(latencies) if latencies else -1
    return (f"{name}: p50 {p50:.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms,"
            f" max {latencies[-1] if latencies else -1:.1f} ms; received {len(rows)}/{connected * len(keys)};"
            f" bytes/viewer/message {statistics.median(sizes) if sizes else 0:.0f}")


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="chat-probe-") as data_dir:
        port = probe._free_port()
        server = probe.start_server(args.serve, port, Path(data_dir))
        try:
            status, state = probe._request(port, "POST", "/api/rooms", {"name": f"chat probe {uuid.uuid4().hex[:6]}"})
            assert status == 201, state
            slug = state["room"]
            probe._request(port, "POST", f"/api/rooms/{slug}/chat", {"client_id": "probe-warm", "text": "warm"})
            context = multiprocessing.get_context("spawn")
            pipes, clients = [], []
            for index in range(args.procs):
                count = args.viewers // args.procs + (index < args.viewers % args.procs)
                parent, child = context.Pipe()
                process = context.Process(target=_client_main, args=(port, slug, args.transport, count, child))
                process.start()
                pipes.append(parent)
                clients.append(process)
            connected = sum(pipe.recv()[1] for pipe in pipes)
            time.sleep(1.0)
            chat_ids = []
            for index in range(args.messages):
                chat_ids.append(_post_chat(port, slug, index))
                time.sleep(args.interval)
            versions = []
            for index in range(args.commands):
                status, body = probe._request(port, "POST", f"/api/rooms/{slug}/commands", {
                    "type": "seek", "client_id": f"probe-c{index}", "client_ms": time.time() * 1000,
                    "position": index})
                assert status == 200, body
                versions.append(body["state"]["version"])
                time.sleep(args.interval)
            steps: list[tuple[float, list[int], float]] = []
            for rate in args.rates:
                ids: list[int] = []
                lock = threading.Lock()
                started = time.monotonic()
                total = int(rate * args.seconds)

                def poster(offset: int, stride: int, ids: list[int] = ids, started: float = started,
                           rate: float = rate, total: int = total, lock: threading.Lock = lock) -> None:
                    for n in range(offset, total, stride):
                        delay = started + n / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        message_id = _post_chat(port, slug, 10_000 + len(steps) * 100_000 + n)
                        with lock:
                            ids.append(message_id)

                threads = [threading.Thread(target=poster, args=(i, 4)) for i in range(4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                steps.append((rate, ids, len(ids) / (time.monotonic() - started)))
            time.sleep(2.0)
            for pipe in pipes:
                pipe.send("stop")
            chat: list[tuple[int, float, int]] = []
            states: list[tuple[int, float, int]] = []
            for pipe in pipes:
                _, result = pipe.recv()
                chat += result["chat"]
                states += result["state"]
            for process in clients:
                process.join(timeout=30)
        finally:
            server.terminate()
            server.wait(timeout=20)
    print(f"{args.transport}, {connected}/{args.viewers} viewers, server {args.serve}")
    print("  " + _summary(f"chat ({args.messages} messages, {args.interval}s apart)", chat, chat_ids, connected))
    if versions and args.transport != "longpoll":
        print("  " + _summary(f"state ({args.commands} versions, same viewers)", states, versions, connected))
    for rate, ids, achieved in steps:
        print("  " + _summary(f"chat at {rate:g}/s asked ({achieved:.1f}/s posted, {len(ids)} messages)", chat, ids,
                              connected))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Chat fan-out latency, throughput and size beside state fan-out.")
    parser.add_argument("--serve", choices=["vsync", "vsync-uvicorn"], default="vsync")
    parser.add_argument("--transport", choices=sorted(VIEWERS), default="sse")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",") if r], default=[])
    parser.add_argument("--seconds", type=float, default=5.0)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
