"""The lab's user-space network: delay each way, order kept under jitter, bandwidth by a token bucket."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadtests.netem import Netem, Shape, TokenBucket, start_process


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _round_trip(shape: Shape, payload: bytes, chunks: int = 1) -> tuple[float, bytes]:
    upstream = await _echo_server()
    netem = await Netem(upstream.sockets[0].getsockname()[1], shape, seed=1).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", netem.port)
    started = time.monotonic()
    for index in range(chunks):
        writer.write(payload + str(index).encode().rjust(4, b"0"))
        await writer.drain()
        await asyncio.sleep(0.002)
    received = await reader.readexactly((len(payload) + 4) * chunks)
    elapsed = time.monotonic() - started
    writer.close()
    netem.server.close()
    upstream.close()
    return elapsed, received


def test_a_round_trip_takes_at_least_the_rtt_less_the_jitter():
    elapsed, received = asyncio.run(_round_trip(Shape(rtt_ms=120, jitter_ms=20), b"x" * 10))
    assert received == b"x" * 10 + b"0000"
    assert elapsed >= 0.110


def test_jitter_never_reorders_bytes():
    _, received = asyncio.run(_round_trip(Shape(rtt_ms=40, jitter_ms=40), b"chunk", chunks=50))
    assert received == b"".join(b"chunk" + str(i).encode().rjust(4, b"0") for i in range(50))


def test_bandwidth_paces_a_large_transfer():
    # 64 kbit/s = 8,000 bytes a second; 40,000 bytes beyond the 16 KiB burst each way need > 2 s.
    elapsed, received = asyncio.run(_round_trip(Shape(bandwidth_kbps=64), b"y" * 40_000))
    assert len(received) == 40_004
    assert elapsed >= 2 * (40_004 - 16 * 1024) / 8000 * 0.9


def test_the_bucket_allows_its_burst_then_charges_the_rate():
    bucket = TokenBucket(rate=1000, burst=500)
    now = bucket.updated
    assert bucket.take(400, now) == now
    assert bucket.take(600, now) == pytest.approx(now + 0.5)
    assert bucket.take(100, now + 0.5) == pytest.approx(now + 0.6)


def test_impossible_shapes_are_refused():
    with pytest.raises(ValueError):
        Shape(rtt_ms=-1)
    with pytest.raises(ValueError):
        Shape(rtt_ms=10, jitter_ms=20)


def test_the_process_announces_its_port_and_forwards():
    async def check(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        await writer.drain()
        data = await reader.readexactly(4)
        writer.close()
        return data

    async def main() -> bytes:
        upstream = await _echo_server()
        loop = asyncio.get_running_loop()
        process, port = await loop.run_in_executor(
            None, start_process, upstream.sockets[0].getsockname()[1], Shape(rtt_ms=20, jitter_ms=2))
        try:
            return await check(port)
        finally:
            process.kill()
            process.wait()
            upstream.close()

    assert asyncio.run(main()) == b"ping"
