"""Connect/disconnect churn through make serve: is the workers' memory flat? (issue 13)

    python -m loadtests.churn --viewers 500 --minutes 10

500 viewers (half SSE, half WebSocket) through nginx each connect, wait for the room's
state, hold the connection 1 to 5 s, disconnect and start again, for ``--minutes``; one
command a second makes new versions meanwhile. Every worker's RSS is read from
/proc at the start (after a first warm-up round of connections), every minute, and at the
end; the verdict compares the end with the start (flat: within 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from loadtests.serve_stack import ServeStack, rss_mib, viewer_request

CONNECT_TIMEOUT_S = 15.0


async def churner(transport: str, slug: str, port: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT_S)
            try:
                writer.write(viewer_request(transport, slug, None))
                buffer = b""
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    while b'"version"' not in buffer:
                        data = await reader.read(65536)
                        if not data:
                            raise ConnectionError("closed before the state")
                        buffer += data
                counts["cycles"] += 1
                await asyncio.sleep(random.uniform(1.0, 5.0))
            finally:
                writer.close()
        except (OSError, ConnectionError, TimeoutError):
            counts["failures"] += 1
            await asyncio.sleep(1.0)


async def run(stack: ServeStack, viewers: int, minutes: float) -> dict[str, object]:
    slug = stack.create_room("churn")
    pids = [int(w["pid"]) for w in stack.worker_list()]
    stop = asyncio.Event()
    counts = {"cycles": 0, "failures": 0}
    tasks = [asyncio.create_task(churner("sse" if i % 2 else "ws", slug, stack.plain_port, stop, counts))
             for i in range(viewers)]
    loop = asyncio.get_running_loop()

    async def commands() -> None:
        position = 0.0
        while not stop.is_set():
            position += 1
            await loop.run_in_executor(None, stack.command, slug, position)
            await asyncio.sleep(1.0)

    commander = asyncio.create_task(commands())
    await asyncio.sleep(10.0)  # warm-up: every viewer connected at least once, caches filled
    samples = [("start", [rss_mib(pid) for pid in pids], dict(counts))]
    print(f"start: RSS MiB {samples[-1][1]} cycles {counts['cycles']}", flush=True)
    started = time.monotonic()
    for minute in range(1, int(minutes) + 1):
        await asyncio.sleep(max(0.0, started + minute * 60 - time.monotonic()))
        samples.append((f"{minute} min", [rss_mib(pid) for pid in pids], dict(counts)))
        print(f"{minute} min: RSS MiB {samples[-1][1]} cycles {counts['cycles']} failures {counts['failures']}",
              flush=True)
    stop.set()
    commander.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, commander, return_exceptions=True)
    await asyncio.sleep(5.0)  # the workers notice the closed connections
    samples.append(("end", [rss_mib(pid) for pid in pids], dict(counts)))
    alive = [pid for pid in pids if pid in {int(w["pid"]) for w in stack.worker_list()}]
    return {"samples": samples, "pids_unchanged": len(alive) == len(pids)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Connect/disconnect churn through make serve; worker RSS.")
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    stack = ServeStack(workers=args.workers).start()
    try:
        result = asyncio.run(run(stack, args.viewers, args.minutes))
    finally:
        stack.stop()
    samples = result["samples"]
    assert isinstance(samples, list)
    print("\n| when | " + " | ".join(f"worker {i} RSS MiB" for i in range(len(samples[0][1])))
          + " | connect cycles | failures |")
    print("|---" * (len(samples[0][1]) + 3) + "|")
    for label, rss, counts in samples:
        print(f"| {label} | " + " | ".join(f"{value:.1f}" for value in rss)
              + f" | {counts['cycles']} | {counts['failures']} |")
    start, end = samples[0][1], samples[-1][1]
    growth = [(e - s) / s * 100 for s, e in zip(start, end, strict=True)]
    print(f"\nRSS end vs start: {', '.join(f'{g:+.1f} %' for g in growth)}; "
          f"flat (within 10 %): {all(abs(g) <= 10 for g in growth)}; "
          f"no worker restarted: {result['pids_unchanged']}")


if __name__ == "__main__":
    main()
