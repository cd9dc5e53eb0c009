"""A throwaway PostgreSQL server from Debian's packages, on a free port, for tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import free_port


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql); .ci/run installs it")
    return found[-1]


def as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PostgresServer:
    # Its own folder under /tmp: the postgres user cannot enter pytest's root-only tmp_path.
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vsync-pg-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://vsync@127.0.0.1:{self.port}/vsync"

    def start(self) -> PostgresServer:
        data = self.base_dir / "pgdata"
        data.mkdir(parents=True)
        self.base_dir.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, "postgres")
            shutil.chown(data, "postgres")
        subprocess.run(as_postgres_user([postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "vsync",
                                         "--no-sync"]), check=True, capture_output=True)
        self.process = subprocess.Popen(
            as_postgres_user([postgres_bin("postgres"), "-D", str(data), "-p", str(self.port), "-k", str(data),
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run([postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                subprocess.run([postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "vsync",
                                "vsync"], check=True, capture_output=True)
                return self
            time.sleep(0.2)
        raise TimeoutError("PostgreSQL did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None
        shutil.rmtree(self.base_dir, ignore_errors=True)
