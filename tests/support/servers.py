"""Real vsync servers in subprocesses for tests: the names tests import, from vsync.launcher."""

from __future__ import annotations

import subprocess

from vsync.launcher import (
    ROOT,
    RedisServer,
    free_port,
    migrate,
    redis_server_binary,
    server_env,
    wait_until_serving,
)
from vsync.launcher import ServerProcess as LiveServer

__all__ = ["ROOT", "LiveServer", "RedisServer", "free_port", "migrate", "redis_server_binary", "server_env",
           "wait_for_port"]


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    wait_until_serving(port, process, timeout)
