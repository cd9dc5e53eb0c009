"""Several vsync processes sharing rooms through one Redis: ``make cluster``.

    python -m vsync.launcher --processes 2 --base-port 8001 --redis-port 6390 [--server uvicorn]

Starts Debian's ``redis-server`` (or reuses one already answering on that port) and
N server processes on consecutive ports, all with ``REDIS_URL`` set and the same
database, and stops them all on Ctrl-C. Importable: tests and load tests use ``Cluster``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("daphne", "uvicorn")
# The same keepalive daphne uses by default (see transports.websocket), given to uvicorn explicitly.
UVICORN_WS_PING = ["--ws-ping-interval", "20", "--ws-ping-timeout", "30"]
# Messages over 16 KiB get an error reply from vsync; this bounds what the server buffers
# before vsync sees it (beyond it uvicorn closes the socket with 1009).
UVICORN_WS_MAX_BYTES = 1024 * 1024
START_TIMEOUT_S = 30.0


def server_command(server: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line of one vsync process: daphne through runserver (the default) or uvicorn."""
    if server == "daphne":
        return [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "vsync.asgi:application", "--host", host, "--port", str(port),
                "--interface", "asgi3", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                "--log-level", "warning", "--no-access-log", "--ws-max-size", str(UVICORN_WS_MAX_BYTES),
                *UVICORN_WS_PING]
    raise ValueError(f"server must be one of {SERVERS}")


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_http(port: int, process: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/time", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} within {timeout} s")


@dataclass
class Cluster:
    processes: int = 2
    base_port: int = 8001
    redis_port: int = 6390
    server: str = "daphne"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None
    redis: subprocess.Popen | None = None
    children: list[subprocess.Popen] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ports(self) -> list[int]:
        return [self.base_port + i for i in range(self.processes)]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> Cluster:
        try:
            self.start_redis()
            env = {**self.env, "REDIS_URL": self.redis_url, "DJANGO_SETTINGS_MODULE": "vsync.settings"}
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                           check=True)
            for port in self.ports:
                log = open(self.log_dir / f"server-{port}.log", "ab") if self.log_dir else subprocess.DEVNULL
                self.children.append(subprocess.Popen(server_command(self.server, port), cwd=ROOT, env=env,
                                                      stdout=log, stderr=subprocess.STDOUT,
                                                      start_new_session=True))
            for port, child in zip(self.ports, self.children, strict=True):
                _wait_http(port, child)
        except BaseException:
            self.stop()
            raise
        return self

    def start_redis(self) -> None:
        if _redis_answers(self.redis_port):
            return  # somebody's Redis is already there: share it, and leave it running on stop
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.redis = subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.log_dir or ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not _redis_answers(self.redis_port):
            if time.monotonic() > deadline or self.redis.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.redis_port}")
            time.sleep(0.05)

    def stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)
        self.redis = None

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.children = []
        self.stop_redis()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=8001)
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    args = parser.parse_args(argv)
    cluster = Cluster(processes=args.processes, base_port=args.base_port, redis_port=args.redis_port,
                      server=args.server)
    for stop_signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # SIGINT too: a shell starts background jobs with it ignored, and Ctrl-C must still work.
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    with cluster:
        print(f"redis: {cluster.redis_url}")
        for url in cluster.urls:
            print(f"vsync ({args.server}): {url}")
        print("Ctrl-C stops them all.", flush=True)
        while all(child.poll() is None for child in cluster.children):
            time.sleep(0.5)


if __name__ == "__main__":
    main()
