"""A reconnect storm through make serve: a worker dies under N viewers; how fast is everyone back? (issue 13)

    python -m loadtests.reconnect_storm --viewers 1000 --transport mixed

N lean viewers (SSE, WebSocket or half each) watch one room through nginx; one worker
is killed (SIGKILL, or --signal TERM), a command is sent at once, and each viewer's time
to that newest version is measured from the kill. The viewers of the dead worker
reconnect with the page's backoff and jitter (doubling from 250 ms, equal jitter),
through nginx to a live worker, resuming from their last version. Goal: all back, p99
within 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import Any

from loadtests.serve_stack import ServeStack, Viewer, percentile

CONNECT_BATCH = 100


async def storm(stack: ServeStack, viewers: int, transport: str, kill_signal: int = signal.SIGKILL,
                wait_s: float = 60.0) -> dict[str, Any]:
    slug = stack.create_room(f"storm {viewers}")
    stop = asyncio.Event()
    crowd = [Viewer(("sse" if i % 2 else "ws") if transport == "mixed" else transport, slug, stack.plain_port)
             for i in range(viewers)]
    tasks = []
    for offset in range(0, viewers, CONNECT_BATCH):
        batch = crowd[offset:offset + CONNECT_BATCH]
        tasks += [asyncio.create_task(viewer.run(stop)) for viewer in batch]
        await asyncio.gather(*(asyncio.wait_for(v.connected.wait(), 60) for v in batch))
    await asyncio.sleep(1.0)
    loop = asyncio.get_running_loop()
    victim = int(stack.worker_list()[0]["pid"])
    killed = time.monotonic()
    os.kill(victim, kill_signal)
    await asyncio.sleep(0.2)  # the dead worker's connections are closed: the storm starts
    newest = await loop.run_in_executor(None, stack.command, slug, 42.0)
    acked = time.monotonic()
    deadline = killed + wait_s
    while time.monotonic() < deadline and not all(newest in v.versions or (v.latest or 0) > newest for v in crowd):
        await asyncio.sleep(0.1)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    back = [v for v in crowd if newest in v.versions]
    from_kill = [v.versions[newest] - killed for v in back]
    reconnected = [v for v in crowd if v.connects > 1]
    return {"viewers": viewers, "transport": transport, "back": len(back), "reconnected": len(reconnected),
            "failed_attempts": sum(v.failures for v in crowd), "command_after_kill_s": acked - killed,
            "p50_s": percentile(from_kill, 0.50), "p99_s": percentile(from_kill, 0.99),
            "max_s": max(from_kill, default=-1.0),
            "reconnected_p99_s": percentile([v.versions[newest] - killed for v in reconnected if v in back], 0.99)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Kill a worker under N viewers; time to the newest version.")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--transport", choices=["sse", "ws", "mixed"], default="mixed")
    parser.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    stack = ServeStack(workers=2).start()
    rows = []
    try:
        for index in range(args.repeat):
            row = asyncio.run(storm(stack, args.viewers, args.transport, getattr(signal, f"SIG{args.signal}")))
            rows.append(row)
            print(f"round {index + 1}: {row}", flush=True)
            time.sleep(15)  # the killed worker is started again before the next round
    finally:
        stack.stop()
    print("\n| viewers | transport | back | reconnected | p50 s | p99 s | max s | p99 s (reconnected only) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['viewers']} | {row['transport']} | {row['back']}/{row['viewers']} | {row['reconnected']} "
              f"| {row['p50_s']:.2f} | {row['p99_s']:.2f} | {row['max_s']:.2f} | {row['reconnected_p99_s']:.2f} |")


if __name__ == "__main__":
    main()
