"""Starting and stopping vsync's processes: the one module for make cluster, make serve, the lab and the tests.

    python -m vsync.launcher --processes 2 --base-port 8001 --redis-port 6390 [--server uvicorn]

starts Debian's ``redis-server`` (or reuses one already answering on that port) and N
server processes on consecutive ports, all with ``REDIS_URL`` set and the same
database, and stops them all on Ctrl-C. Every process is started in its own process
group, so stopping it also stops whatever it started.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("daphne", "uvicorn")
# The same keepalive daphne uses by default (see transports.websocket), given to uvicorn explicitly.
UVICORN_WS_PING = ["--ws-ping-interval", "20", "--ws-ping-timeout", "30"]
# Messages over 16 KiB get an error reply from vsync; this bounds what the server buffers
# before vsync sees it (beyond it uvicorn closes the socket with 1009).
UVICORN_WS_MAX_BYTES = 1024 * 1024
# SSE streams and WebSockets never end by themselves: without a bound uvicorn's shutdown
# waits for them forever; the hub's clients reconnect and resume from their last version.
UVICORN_GRACEFUL_S = 3
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def server_command(server: str, port: int, host: str = "127.0.0.1", *, trusted_proxies: str = "") -> list[str]:
    """The command line of one vsync process: daphne through runserver (the default) or uvicorn.

    ``trusted_proxies`` (uvicorn): addresses whose X-Forwarded-For names the client, as behind make serve's nginx.
    """
    if server == "daphne":
        return [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
    if server == "uvicorn":
        proxy = ["--proxy-headers", "--forwarded-allow-ips", trusted_proxies] if trusted_proxies else [
            "--no-proxy-headers"]
        return [sys.executable, "-m", "uvicorn", "vsync.asgi:application", "--host", host, "--port", str(port),
                "--interface", "asgi3", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                "--log-level", "warning", "--no-access-log", "--ws-max-size", str(UVICORN_WS_MAX_BYTES),
                "--timeout-graceful-shutdown", str(UVICORN_GRACEFUL_S), *proxy, *UVICORN_WS_PING]
    raise ValueError(f"server must be one of {SERVERS}")


# free_port hands out ports below the kernel's ephemeral range, so that no outgoing connection
# (a test's client, a server's upstream) can take a port between free_port and the server's bind,
# from a slice of its own for each pytest-xdist worker, and never the same one twice in a process.
PORT_FLOOR = 10_000
PORT_SLICES = 8
_ports_given: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _port_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % PORT_SLICES if worker.isdigit() else 0
    width = (_ephemeral_floor() - PORT_FLOOR) // PORT_SLICES
    start = PORT_FLOOR + index * width
    return range(start, start + width)


def free_port(host: str = "127.0.0.1") -> int:
    ports = _port_slice()
    for port in random.sample(ports, min(200, len(ports))):
        if port in _ports_given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket() as sock:  # the slice is exhausted or unusable: any port the kernel gives
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_http(port: int, path: str = "/api/time", host: str = "127.0.0.1") -> bool:
    """Any HTTP answer counts (a production worker may redirect to HTTPS or refuse the Host)."""
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def wait_until_serving(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = START_TIMEOUT_S,
                       path: str = "/api/time") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        if answers_http(port, path):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} within {timeout} s")


def stop_process_group(process: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT_S,
                       stop_signal: int = signal.SIGTERM) -> None:
    """Signal the process's group, wait, and SIGKILL the group if it does not go in time."""
    if process is None:
        return
    if process.poll() is None:
        try:
            os.killpg(process.pid, stop_signal)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    else:  # the leader is gone: end what it left in its group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def spawn(command: list[str], env: dict[str, str], log: Path | None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, its output appended to ``log``."""
    out: IO[bytes] | int = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        if not isinstance(out, int):
            out.close()


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This environment, on SQLite in ``data_dir`` and the in-memory layer unless ``extra`` says otherwise."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env.update(VSYNC_DATA_DIR=str(data_dir), DATABASE_URL=f"sqlite:///{data_dir / 'db.sqlite3'}",
               DJANGO_SETTINGS_MODULE="vsync.settings", PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def migrate(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput", "-v", "0")


@dataclass
class ServerProcess:
    """One vsync server process (daphne unless ``command`` says otherwise); ``env`` decides what it uses."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    command: list[str] | None = None
    server: str = "daphne"
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, wait: bool = True) -> ServerProcess:
        if self.log_path is None and "VSYNC_DATA_DIR" in self.env:
            self.log_path = Path(self.env["VSYNC_DATA_DIR"]) / f"server-{self.port}.log"
        self.process = spawn(self.command or server_command(self.server, self.port), self.env, self.log_path)
        if wait:
            self.wait()
        return self

    def wait(self, timeout: float = START_TIMEOUT_S) -> None:
        wait_until_serving(self.port, self.process, timeout)

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the process alone, as a crash would (its group is left to stop())."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server); make test installs it")
    return path


def redis_answers(port: int, unix_socket: Path | None = None) -> bool:
    try:
        if unix_socket is not None:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(0.5)
            sock.connect(str(unix_socket))
        else:
            sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        with sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """Debian's redis-server without persistence, on loopback or (``unix_socket``) on a socket only its owner opens.

    ``share``: use one already answering on the port.
    """

    data_dir: Path | None = None
    port: int = field(default_factory=free_port)
    share: bool = False
    unix_socket: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}?db=0"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.share and redis_answers(self.port, self.unix_socket):
            return self  # somebody's Redis: share it, and leave it running on stop
        command = [redis_server_binary(), "--save", "", "--appendonly", "no"]
        if self.unix_socket is not None:
            command += ["--port", "0", "--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        else:
            command += ["--port", str(self.port), "--bind", "127.0.0.1"]
        if self.data_dir is not None:
            command += ["--dir", str(self.data_dir)]
        self.process = spawn(command, dict(os.environ), None, cwd=self.data_dir or ROOT)
        deadline = time.monotonic() + 10
        while not redis_answers(self.port, self.unix_socket):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise TimeoutError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql); make serve installs it")
    return found[-1]


def as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    """Debian's PostgreSQL with its data in ``base_dir`` (kept across runs), reached by a Unix socket there.

    Trust authentication on a socket only its owner (and root) may enter; no TCP port.
    """

    base_dir: Path
    database: str = "vsync"
    user: str = "vsync"

    @property
    def data(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{str(self.socket_dir).replace('/', '%2F')}/{self.database}"

    def start(self) -> PostgresServer:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        owner_commands = os.geteuid() == 0
        if owner_commands:
            self.base_dir.chmod(0o755)
            shutil.chown(self.base_dir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(exist_ok=True)
            if owner_commands:
                shutil.chown(self.data, "postgres")
            subprocess.run(as_postgres_user([postgres_bin("initdb"), "-D", str(self.data), "-A", "trust",
                                             "-U", self.user, "-E", "UTF8"]), check=True, capture_output=True)
        options = f"-c listen_addresses='' -k {self.socket_dir} -c unix_socket_permissions=0700"
        subprocess.run(as_postgres_user([postgres_bin("pg_ctl"), "-D", str(self.data), "-l",
                                         str(self.base_dir / "postgres.log"), "-w", "-t", "60", "-o", options,
                                         "start"]), check=True, capture_output=True)
        exists = subprocess.run(self._psql(f"SELECT 1 FROM pg_database WHERE datname = {_quote(self.database)}"),
                                capture_output=True, text=True, check=True)
        if exists.stdout.strip() != "1":
            subprocess.run(self._psql(f'CREATE DATABASE "{self.database}"'), check=True, capture_output=True)
        return self

    def _psql(self, sql: str) -> list[str]:
        return [postgres_bin("psql"), "-h", str(self.socket_dir), "-U", self.user, "-d", "postgres", "-tAc", sql]

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(as_postgres_user([postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                             "stop"]), capture_output=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Cluster:
    """N server processes on consecutive ports sharing rooms through one Redis (``make cluster``)."""

    processes: int = 2
    base_port: int = 8001
    redis_port: int = 6390
    server: str = "daphne"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None
    redis: RedisServer | None = None
    servers: list[ServerProcess] = field(default_factory=list)

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
            migrate(env)
            for port in self.ports:
                log = self.log_dir / f"server-{port}.log" if self.log_dir else None
                self.servers.append(ServerProcess(env=env, port=port, server=self.server, log_path=log
                                                  ).start(wait=False))
            for server in self.servers:
                server.wait()
        except BaseException:
            self.stop()
            raise
        return self

    def start_redis(self) -> None:
        self.redis = RedisServer(data_dir=self.log_dir, port=self.redis_port, share=True).start()

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        self.redis = None

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []
        self.stop_redis()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_on_signals(handler: Any = None) -> None:
    """Leave the program on SIGTERM, SIGINT and SIGHUP, so ``with`` blocks and ``finally`` clean up."""

    def leave(*_: object) -> None:
        sys.exit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # SIGINT too: a shell starts background jobs with it ignored, and Ctrl-C must still work.
        signal.signal(stop_signal, handler or leave)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=8001)
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    args = parser.parse_args(argv)
    cluster = Cluster(processes=args.processes, base_port=args.base_port, redis_port=args.redis_port,
                      server=args.server)
    stop_on_signals()
    with cluster:
        print(f"redis: {cluster.redis_url}")
        for url in cluster.urls:
            print(f"vsync ({args.server}): {url}")
        print("Ctrl-C stops them all.", flush=True)
        while all(server.alive() for server in cluster.servers):
            time.sleep(0.5)


if __name__ == "__main__":
    main()
