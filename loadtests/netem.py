"""A user-space network between the load generator and the servers: delay, jitter and bandwidth per link.

    python -m loadtests.netem --upstream-port 8001 --rtt-ms 150 --jitter-ms 15 --bandwidth-kbps 2000

Prints ``ready <port>`` once it listens on 127.0.0.1. Every accepted connection gets its own link
to the upstream server, shaped the same way in each direction:

- delay: ``rtt_ms / 2 ± jitter_ms / 2`` per chunk (uniform), so a round trip is ``rtt_ms ± jitter_ms``;
  a chunk never overtakes the one before it (TCP delivers in order, so jitter cannot reorder bytes:
  a late chunk holds back the next, as head-of-line blocking would);
- bandwidth: a token bucket per direction (``bandwidth_kbps``, a burst of ``BURST_BYTES``); a chunk
  leaves when the bucket has paid for it, then travels the delay;
- back pressure: at most ``MAX_QUEUED_BYTES`` are in flight per direction before the proxy stops
  reading, as a full TCP window would stop the sender.

Kernel netem would be the better tool (it shapes packets, not chunks, and can drop them), but this
machine's kernel has no netem qdisc ("Specified qdisc kind is unknown" inside a network namespace),
so packet loss is not emulated: a user-space proxy sits above TCP, which never loses bytes.
It runs in its own process so that its CPU is not the load generator's or the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One line for every report that uses this module.
PACKET_LOSS = ("Packet loss is not emulated: this kernel has no netem qdisc (tc qdisc add dev lo root netem loss 1% "
               "inside an ip netns answers 'Specified qdisc kind is unknown'), and a proxy above TCP never loses "
               "bytes.")
BURST_BYTES = 16 * 1024
MAX_QUEUED_BYTES = 256 * 1024
READ_BYTES = 65536


@dataclass(frozen=True)
class Shape:
    """One link's conditions; all zero is a plain forwarder."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0

    def __post_init__(self) -> None:
        if self.rtt_ms < 0 or self.jitter_ms < 0 or self.bandwidth_kbps < 0:
            raise ValueError("rtt, jitter and bandwidth must not be negative")
        if self.jitter_ms > self.rtt_ms:
            raise ValueError("jitter above the RTT would need a negative delay")

    @property
    def shaped(self) -> bool:
        return bool(self.rtt_ms or self.jitter_ms or self.bandwidth_kbps)

    def one_way_s(self, rand: random.Random) -> float:
        half_jitter = self.jitter_ms / 2
        return max(0.0, self.rtt_ms / 2 + rand.uniform(-half_jitter, half_jitter)) / 1000.0

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_kbps * 1000 / 8


class TokenBucket:
    """``rate`` bytes a second with a burst of ``burst``; ``take`` returns when ``size`` bytes may leave.

    The bucket may go into debt: a chunk larger than the burst waits for its whole cost, and the
    next chunk waits behind it, so a long run of chunks leaves at exactly ``rate``.
    """

    def __init__(self, rate: float, burst: float = BURST_BYTES) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def take(self, size: int, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= size
        return now if self.tokens >= 0 else now + -self.tokens / self.rate


class Direction:
    """One direction of one link: chunks in, each released at its time, in order."""

    def __init__(self, shape: Shape, writer: asyncio.StreamWriter, rand: random.Random) -> None:
        self.shape, self.writer, self.rand = shape, writer, rand
        self.bucket = TokenBucket(shape.bytes_per_s) if shape.bandwidth_kbps else None
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.queued = 0
        self.room = asyncio.Event()
        self.room.set()
        self.last_release = 0.0

    def release_time(self, size: int) -> float:
        now = time.monotonic()
        leaves = self.bucket.take(size, now) if self.bucket else now
        self.last_release = max(self.last_release, leaves + self.shape.one_way_s(self.rand))
        return self.last_release

    async def pump(self, reader: asyncio.StreamReader) -> None:
        delivering = asyncio.ensure_future(self._deliver())
        try:
            while True:
                chunk = await reader.read(READ_BYTES)
                if not chunk:
                    break
                self.queue.put_nowait((self.release_time(len(chunk)), chunk))
                self.queued += len(chunk)
                if self.queued > MAX_QUEUED_BYTES:
                    self.room.clear()
                    await self.room.wait()
        except (ConnectionError, OSError):
            pass
        # The end of the stream travels like data: a close arrives after the bytes before it.
        self.queue.put_nowait((max(self.last_release, time.monotonic()), b""))
        try:
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                self.writer.close()
            except OSError:
                pass

    async def _deliver(self) -> None:
        while True:
            release_at, chunk = await self.queue.get()
            wait = release_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                return
            self.writer.write(chunk)
            await self.writer.drain()
            self.queued -= len(chunk)
            if self.queued <= MAX_QUEUED_BYTES:
                self.room.set()


class Netem:
    """Listens on 127.0.0.1:``port`` (0: any free port) and forwards each connection to ``upstream_port``."""

    def __init__(self, upstream_port: int, shape: Shape, port: int = 0, seed: int | None = None) -> None:
        self.upstream_port, self.shape, self.port = upstream_port, shape, port
        self.rand = random.Random(seed)
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self) -> Netem:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        try:
            await asyncio.gather(Direction(self.shape, up_writer, self.rand).pump(reader),
                                 Direction(self.shape, writer, self.rand).pump(up_reader),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass  # shutting down


def start_process(upstream_port: int, shape: Shape,
                  log_path: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """This module in its own process in front of ``upstream_port``; returns the process and its port."""
    command = [sys.executable, "-m", "loadtests.netem", "--upstream-port", str(upstream_port),
               "--rtt-ms", str(shape.rtt_ms), "--jitter-ms", str(shape.jitter_ms),
               "--bandwidth-kbps", str(shape.bandwidth_kbps)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    if log_path:
        log.close()  # type: ignore[union-attr]
    line = process.stdout.readline() if process.stdout else b""
    if not line.startswith(b"ready "):
        process.kill()
        raise RuntimeError(f"the netem proxy did not start: {line!r}")
    return process, int(line.split()[1])


async def _serve(args: argparse.Namespace) -> None:
    shape = Shape(args.rtt_ms, args.jitter_ms, args.bandwidth_kbps)
    netem = await Netem(args.upstream_port, shape, args.port, args.seed).start()
    print(f"ready {netem.port}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-kbps", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    try:
        Shape(args.rtt_ms, args.jitter_ms, args.bandwidth_kbps)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        (uvloop.run if uvloop else asyncio.run)(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
