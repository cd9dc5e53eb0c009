"""Accepted commands per second for one room, with W concurrent HTTP writers.

Starts a real server (daphne via runserver) on a fresh SQLite file, then W writer
threads each POST commands as fast as answers come back, for a fixed duration.

    python -m loadtests.command_throughput --writers 8 --duration 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.support.servers import LiveServer, migrate, server_env


def run_once(url: str, writers: int, duration: float) -> dict[str, float]:
    counts = {"accepted": 0, "stale": 0, "other": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def writer(index: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            n = 0
            while time.monotonic() < deadline:
                # One client_id per writer and command keeps the per-client rate limit out of the figure.
                body = {"type": "seek", "client_id": f"w{index}-{n}", "client_ms": time.time() * 1000,
                        "position": float(n % 60)}
                started = time.perf_counter()
                status = client.post("/api/rooms/demo/commands", json=body).status_code
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    key = {200: "accepted", 409: "stale"}.get(status, "other")
                    counts[key] += 1
                    latencies.append(elapsed)
                n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"accepted_per_s": counts["accepted"] / elapsed, "stale": counts["stale"], "other": counts["other"],
            "p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as data_dir:
            env = server_env(Path(data_dir))
            migrate(env)
            server = LiveServer(env=env).start()
            try:
                process = psutil.Process(server.process.pid)
                process.cpu_percent()
                result = run_once(server.url, args.writers, args.duration)
                result["server_cpu_percent"] = process.cpu_percent()
                runs.append(result)
            finally:
                server.stop()
        print(json.dumps(runs[-1]))
    rates = sorted(run["accepted_per_s"] for run in runs)
    print(f"accepted commands/s, {args.writers} writers, SQLite, one room: median {statistics.median(rates):.0f} "
          f"(min {rates[0]:.0f}, max {rates[-1]:.0f}) over {len(runs)} runs of {args.duration:.0f} s")


if __name__ == "__main__":
    main()
