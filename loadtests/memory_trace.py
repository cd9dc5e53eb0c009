"""Where a connected viewer's server memory goes: tracemalloc in one uvicorn process, before and after N viewers.

    python -m loadtests.memory_trace --transport ws --viewers 1000 [--top 25] [--out FILE]

Starts uvicorn (vsync.launcher's command, the app wrapped by loadtests.memory_app) with
PYTHONTRACEMALLOC, takes a snapshot, connects N idle viewers with loadtests.probe_driver,
takes another and prints the Python heap per viewer by allocating line: vsync's own lines
against the server library's. tracemalloc slows the server a lot: keep N around 1,000.
RSS per viewer (what the lab's tables quote) is larger: it adds the allocator's slack and the
kernel's socket buffers are not in it at all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

from vsync import launcher

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 4


def _get(url: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()


def trace(transport: str, viewers: int, top: int) -> list[str]:
    data = Path(tempfile.mkdtemp(prefix="vsync-memory-"))
    env = launcher.server_env(data)
    env.update(DEBUG="0", VSYNC_ADDRESS_LIMITS="off", SECRET_KEY="memory-trace-" + "x" * 40)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = launcher.free_port()
    command = launcher.server_command("uvicorn", port)
    command[command.index("vsync.asgi:application")] = "loadtests.memory_app:application"
    # tracemalloc makes the start slow: the launcher waits until the port serves.
    server = launcher.ServerProcess(env={**env, "PYTHONTRACEMALLOC": str(FRAMES), "VSYNC_TRACEMALLOC_DIR": str(data),
                                         "PYTHONPATH": str(ROOT)}, port=port, command=command).start(wait=False)
    server.wait(timeout=120)
    base = server.url
    try:
        _get(f"{base}/__tracemalloc/before", 60)
        driver = subprocess.Popen(
            [sys.executable, "-m", "loadtests.probe_driver", "--hosts", base, "--room", "demo", "--transport",
             transport, "--viewers", str(viewers), "--procs", "1", "--ramp-s", "4", "--idle-s", "25", "--busy-s",
             "0", "--command-rate", "0", "--stats-dir", str(data)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        time.sleep(15)
        _get(f"{base}/__tracemalloc/after", 120)
        driver.wait(timeout=120)
    finally:
        server.stop()
    after = tracemalloc.Snapshot.load(str(data / "after.pickle"))
    stats = after.compare_to(tracemalloc.Snapshot.load(str(data / "before.pickle")), "lineno")
    own = sum(s.size_diff for s in stats if str(ROOT / "transports") in str(s.traceback[0])
              or str(ROOT / "rooms") in str(s.traceback[0]))
    total = sum(s.size_diff for s in stats)
    lines = [f"{transport}, {viewers} idle viewers, uvicorn: Python heap {total / 1024 / viewers:.2f} KiB per viewer, "
             f"of which vsync's own code (transports/, rooms/) {own / 1024 / viewers:.2f} KiB", "",
             "| bytes per viewer | blocks per viewer | allocated at |", "|---:|---:|---|"]
    for stat in stats[:top]:
        where = str(stat.traceback[0]).replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        lines.append(f"| {stat.size_diff / viewers:.0f} | {stat.count_diff / viewers:.2f} | `{where}` |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=["sse", "ws", "longpoll"], default="ws")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = trace(args.transport, args.viewers, args.top)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
