"""The comparison runner: start servers, run locust against them, sample the processes, collect rows.

Runs in a plain Python process; locust runs in its own (gevent) subprocess and hands its
measurements back as ``stats-<pid>.json`` files, merged here with ``loadtests.metrics``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadtests import metrics, netem
from loadtests.probe import SOCKETIO, socketio_command
from loadtests.report import cdf_of, write_tables
from loadtests.rows import Row
from vsync import launcher

ROOT = Path(__file__).resolve().parent.parent
VIEWER_CLASSES = {"poll": "PollViewer", "longpoll": "LongPollViewer", "sse": "SSEViewer", "ws": "WebSocketViewer",
                  "socketio": "SocketIoViewer"}
FLOOR = "floor"
# Measured on the 2-core machine against the floor (single runs): at 1,000 viewers one locust process
# gave p99 40 ms (WebSocket) and 62 ms (SSE), two gave 111 and 74 ms (the extra processes compete with
# the server for two cores); at 2,500 two processes cut p50 from 120 to 41 ms at a similar p99.
# So: one process per 1,000 viewers.
VIEWERS_PER_LOCUST_PROCESS = 1000
SAMPLE_EVERY_S = 0.5
# Small runs go side by side, each with its own servers and locust: a quick look at four
# transports takes one run's time instead of eight. Measured: 8 runs of 50 viewers at once
# (four transports and their floors) used about a quarter of one core, servers and locust
# summed. Bigger sweeps run one at a time: runs that share two cores would measure each other.
PARALLEL_MAX_TOTAL_VIEWERS = 500
# locust is client-bound from about 1,000 viewers (BENCHMARKING.md): from here the lean probe is the default.
PROBE_FROM_VIEWERS = 1000
# One uvloop probe process keeps up with a few thousand sockets (BENCHMARKING.md: 1,000 viewers at
# p99 21-30 ms against the bare floor); more processes would take the server's cores.
VIEWERS_PER_PROBE_PROCESS = 2500


@dataclass(frozen=True)
class RunSpec:
    transport: str
    viewers: int
    server: str  # daphne, uvicorn or floor
    layer: str  # memory, redis or floor
    repeat: int = 0
    idle_s: float = 0.0  # > 0: an idle run of this many seconds, no commands at all
    # The network between the load generator and the servers (loadtests.netem); all zero: loopback.
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0
    client: str = "locust"  # the load generator: locust or probe (loadtests.probe_driver)
    processes: int = 0  # server processes on the Redis layer; 0: Settings.redis_processes (a scale-out run if set)

    @property
    def scenario(self) -> str:
        return "idle" if self.idle_s else "busy"

    @property
    def shape(self) -> netem.Shape:
        return netem.Shape(self.rtt_ms, self.jitter_ms, self.bandwidth_kbps)

    @property
    def run_id(self) -> str:
        suffix = "-idle" if self.idle_s else ""
        if self.rtt_ms or self.jitter_ms:
            suffix += f"-rtt{self.rtt_ms:g}j{self.jitter_ms:g}"
        if self.bandwidth_kbps:
            suffix += f"-bw{self.bandwidth_kbps:g}"
        if self.client != "locust":
            suffix += f"-{self.client}"
        if self.processes:
            suffix += f"-p{self.processes}"
        return f"{self.transport}-{self.viewers}-{self.server}-{self.layer}-r{self.repeat}{suffix}"


@dataclass
class Settings:
    duration_s: float = 20.0
    command_rate: float = 2.0
    poll_interval: float = 1.0
    longpoll_timeout: float = 25.0
    redis_processes: int = 2
    locust_processes: int = 0  # 0: decide from the viewer count
    parallel: int = 0  # runs at once; 0: all of them when they are small (PARALLEL_MAX_TOTAL_VIEWERS), else 1
    quiet: bool = False


_print_lock = threading.Lock()


def say(line: str, end: str = "\n") -> None:
    """Print whole lines even when several runs report at once."""
    with _print_lock:
        print(line, end=end, flush=True)


free_port = launcher.free_port
stop_process = launcher.stop_process_group


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


@dataclass
class Servers:
    """The server processes of one run (and redis-server for the Redis layer), started fresh (vsync.launcher)."""

    spec: RunSpec
    data_dir: Path
    settings: Settings
    servers: list[launcher.ServerProcess] = field(default_factory=list)
    redis: launcher.RedisServer | None = None
    # One netem process in front of each server when the run has a network shape.
    proxies: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        """Where the load generator connects: through the network proxies when there are any."""
        if self.proxies:
            return [f"http://127.0.0.1:{port}" for _, port in self.proxies]
        return self.direct_urls

    @property
    def direct_urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def proxy_pids(self) -> list[int]:
        return [process.pid for process, _ in self.proxies]

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """Every process of the run, redis-server included (the sampler sums them)."""
        servers = [server.process for server in self.servers if server.process is not None]
        return ([self.redis.process] if self.redis and self.redis.process else []) + servers

    def env(self, redis_url: str = "") -> dict[str, str]:
        env = launcher.server_env(self.data_dir)
        env.pop("DEBUG", None)
        # DEBUG off, as deployed: with DEBUG on Django also keeps every query in memory.
        env.update(DEBUG="0", SECRET_KEY=f"loadtest-{secrets.token_hex(16)}", PYTHONPATH=str(ROOT),
                   # Every viewer comes from 127.0.0.1: the per-address caps (1,000 open connections)
                   # would refuse all but the first 1,000 of a run (measured: 4,000 of 5,000 refused).
                   VSYNC_ADDRESS_LIMITS="off")
        if redis_url:
            env["REDIS_URL"] = redis_url
        return env

    def command(self, port: int) -> list[str]:
        if self.spec.server in launcher.SERVERS:
            command = launcher.server_command(self.spec.server, port)
            return socketio_command(command) if self.spec.transport == SOCKETIO else command
        if self.spec.server == FLOOR:
            return [sys.executable, "-m", "loadtests.floor", "--port", str(port)]
        raise ValueError(f"unknown server {self.spec.server!r}")

    def start(self) -> Servers:
        redis_url = ""
        count = 1
        try:
            if self.spec.layer == "redis":
                self.redis = launcher.RedisServer(data_dir=self.data_dir).start()
                redis_url = self.redis.url
                count = self.spec.processes or self.settings.redis_processes
            if self.spec.server == FLOOR:
                count = floor_processes(self.spec.viewers)
            for index in range(count):
                port = free_port()
                server = launcher.ServerProcess(env=self.env(redis_url), port=port, command=self.command(port),
                                                log_path=self.data_dir / f"{self.spec.server}-{index}.log")
                self.servers.append(server.start(wait=False))
            for server in self.servers:
                server.wait()
            if self.spec.shape.shaped:
                for index, server in enumerate(self.servers):
                    self.proxies.append(netem.start_process(server.port, self.spec.shape,
                                                            self.data_dir / f"netem-{index}.log"))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process, _ in self.proxies:
            stop_process(process)
        self.proxies.clear()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


# Viewers per floor process: one process cannot hold 20,000 sockets under the usual hard limit of 20,000
# open files (and an unprivileged container may not raise it), so larger floors run as several
# processes, each its own port and room, the viewers spread over them and each command sent to all.
FLOOR_VIEWERS_PER_PROCESS = 10_000


def floor_processes(viewers: int) -> int:
    return max(1, math.ceil(viewers / FLOOR_VIEWERS_PER_PROCESS))


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@dataclass
class Sample:
    t: float
    server_cpu_s: float
    server_rss: int
    client_cpu_s: dict[int, float]
    proxy_cpu_s: float = 0.0
    server_cpu_by_pid: dict[int, float] = field(default_factory=dict)  # each server process with its children


class Sampler(threading.Thread):
    """CPU seconds and RSS of the server processes and CPU of the locust processes, twice a second."""

    def __init__(self, server_pids: list[int], proxy_pids: list[int] | None = None) -> None:
        super().__init__(daemon=True)
        self.server_pids = server_pids
        self.proxy_pids = proxy_pids or []
        self.client_pid: int | None = None
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(self.sample())
            self._stop_event.wait(SAMPLE_EVERY_S)

    def sample(self) -> Sample:
        cpu, rss = 0.0, 0
        by_pid: dict[int, float] = {}
        for pid in self.server_pids:
            for proc in tree(pid):
                try:
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    by_pid[pid] = by_pid.get(pid, 0.0) + times.user + times.system
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
        client: dict[int, float] = {}
        for proc in tree(self.client_pid) if self.client_pid else []:
            try:
                times = proc.cpu_times()
                client[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        proxy = 0.0
        for pid in self.proxy_pids:
            for proc in tree(pid):
                try:
                    times = proc.cpu_times()
                    proxy += times.user + times.system
                except psutil.Error:
                    pass
        return Sample(time.time(), cpu, rss, client, proxy, by_pid)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def between(self, start_s: float, end_s: float) -> tuple[Sample, Sample] | None:
        inside = [s for s in self.samples if start_s <= s.t <= end_s]
        return (inside[0], inside[-1]) if len(inside) >= 2 and inside[-1].t > inside[0].t else None

    def server_cpu_pct(self, window: metrics.Window | None) -> float:
        pair = self.between(window.start_s, window.end_s) if window else None
        if pair is None:
            return math.nan
        first, last = pair
        return 100.0 * (last.server_cpu_s - first.server_cpu_s) / (last.t - first.t)

    def busiest_server_cpu_pct(self, window: metrics.Window | None) -> float:
        """CPU % of the busiest single process (redis-server included) in ``window``: where a core runs out."""
        pair = self.between(window.start_s, window.end_s) if window else None
        if pair is None:
            return math.nan
        first, last = pair
        return max((100.0 * (cpu - first.server_cpu_by_pid.get(pid, 0.0)) / (last.t - first.t)
                    for pid, cpu in last.server_cpu_by_pid.items()), default=math.nan)

    def proxy_cpu_pct(self, window: metrics.Window | None) -> float:
        pair = self.between(window.start_s, window.end_s) if window else None
        if pair is None or not self.proxy_pids:
            return math.nan
        first, last = pair
        return 100.0 * (last.proxy_cpu_s - first.proxy_cpu_s) / (last.t - first.t)

    def client_cpu_pct(self, window: metrics.Window | None) -> tuple[float, float]:
        """Total CPU % of the locust processes, and of the busiest one, in ``window``."""
        pair = self.between(window.start_s, window.end_s) if window else None
        if pair is None:
            return math.nan, math.nan
        first, last = pair
        span = last.t - first.t
        per_process = [100.0 * (cpu - first.client_cpu_s.get(pid, 0.0)) / span
                       for pid, cpu in last.client_cpu_s.items()]
        return sum(per_process), max(per_process, default=math.nan)


def locust_processes(settings: Settings, viewers: int) -> int:
    if settings.locust_processes:
        return settings.locust_processes
    return max(1, min(os.cpu_count() or 1, math.ceil(viewers / VIEWERS_PER_LOCUST_PROCESS)))


def locust_command(spec: RunSpec, settings: Settings, urls: list[str], room: str, run_dir: Path) -> list[str]:
    """The headless locust invocation; the timeline is ramp-up, idle, busy, then a quiet tail."""
    ramp_s = min(4.0, max(1.0, spec.viewers / 250))
    if spec.idle_s:
        return _locust_command(spec, settings, urls, room, run_dir, ramp_s, spec.idle_s + 1.0, 0.0, 0.0)
    busy_s = max(3.0, settings.duration_s * 0.4)
    # At least 2 s idle: the idle window drops a second of margin and keeps whole seconds only.
    idle_s = max(2.0, settings.duration_s - ramp_s - busy_s - 2.0)
    return _locust_command(spec, settings, urls, room, run_dir, ramp_s, idle_s, busy_s, settings.command_rate)


def _locust_command(spec: RunSpec, settings: Settings, urls: list[str], room: str, run_dir: Path, ramp_s: float,
                    idle_s: float, busy_s: float, command_rate: float) -> list[str]:
    processes = locust_processes(settings, spec.viewers)
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
               "-u", str(spec.viewers + 1), "-r", f"{(spec.viewers + 1) / ramp_s:.1f}",
               "-t", f"{math.ceil(ramp_s + idle_s + busy_s + 2.0)}s",
               "--host", urls[0], "--vsync-hosts", ",".join(urls),
               "--vsync-room", room, "--command-rate", str(command_rate),
               "--idle-s", f"{ramp_s + 1.0 + idle_s:.1f}", "--busy-s", f"{busy_s:.1f}",
               "--poll-interval", str(settings.poll_interval), "--longpoll-timeout", str(settings.longpoll_timeout),
               "--stats-dir", str(run_dir), "--csv", str(run_dir / "locust"), "--only-summary",
               "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if processes > 1:
        command += ["--processes", str(processes)]
    return [*command, VIEWER_CLASSES[spec.transport], "Controller"]


def probe_processes(settings: Settings, viewers: int) -> int:
    if settings.locust_processes:
        return settings.locust_processes
    return max(1, min(os.cpu_count() or 1, math.ceil(viewers / VIEWERS_PER_PROBE_PROCESS)))


def client_processes(spec: RunSpec, settings: Settings) -> int:
    return probe_processes(settings, spec.viewers) if spec.client == "probe" else locust_processes(settings,
                                                                                                   spec.viewers)


def probe_command(spec: RunSpec, settings: Settings, urls: list[str], room: str, run_dir: Path) -> list[str]:
    """loadtests.probe_driver on the same timeline as locust's: ramp-up, idle, busy, a quiet tail."""
    ramp_s = min(4.0, max(1.0, spec.viewers / 250))
    if spec.idle_s:
        idle_s, busy_s, rate = spec.idle_s + 1.0, 0.0, 0.0
    else:
        busy_s = max(3.0, settings.duration_s * 0.4)
        idle_s, rate = max(2.0, settings.duration_s - ramp_s - busy_s - 2.0), settings.command_rate
    return [sys.executable, "-m", "loadtests.probe_driver", "--hosts", ",".join(urls), "--room", room,
            "--transport", spec.transport, "--viewers", str(spec.viewers),
            "--procs", str(probe_processes(settings, spec.viewers)), "--ramp-s", f"{ramp_s:.1f}",
            "--idle-s", f"{idle_s + 1.0:.1f}", "--busy-s", f"{busy_s:.1f}", "--command-rate", str(rate),
            "--poll-interval", str(settings.poll_interval), "--stats-dir", str(run_dir),
            "-t", f"{math.ceil(ramp_s + idle_s + busy_s + 4.0)}s"]


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_for_dumps(run_dir: Path, sampler: Sampler, expected: int, timeout: float = 20.0) -> None:
    """locust's master can exit before its worker processes have written their stats: wait for them."""
    pids = {pid for sample in sampler.samples for pid in sample.client_cpu_s}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if running(pid)]
        if not alive and len(list(run_dir.glob("stats-*.json"))) >= expected:
            return
        time.sleep(0.2)
    say(f"warning: {run_dir.name}: locust processes still running or stats missing after {timeout:.0f} s")


def create_room(url: str, run_id: str) -> str:
    status, body = http_json("POST", f"{url}/api/rooms", {"name": f"bench {run_id}"})
    if status == 201 and isinstance(body, dict):
        return str(body["room"])
    # A floor server without a rooms API serves one room under any slug.
    return "bench"


def parallel_runs(specs: list[RunSpec], settings: Settings) -> int:
    if settings.parallel:
        return max(1, settings.parallel)
    return len(specs) if sum(spec.viewers for spec in specs) <= PARALLEL_MAX_TOTAL_VIEWERS else 1


def progress(spec: RunSpec, index: int, total: int, elapsed: float, planned: float, sampler: Sampler,
             quiet: bool, one_line: bool) -> None:
    if quiet:
        return
    last = sampler.samples[-3:]
    cpu = (100.0 * (last[-1].server_cpu_s - last[0].server_cpu_s) / (last[-1].t - last[0].t)
           if len(last) >= 2 and last[-1].t > last[0].t else 0.0)
    line = (f"[{index}/{total}] {spec.transport:8} x{spec.viewers:<5} {spec.server}/{spec.layer:6} "
            f"{elapsed:5.1f}/{planned:.0f} s  server CPU {cpu:5.1f} %")
    if one_line and sys.stdout.isatty():
        say(line, end="\r")
    elif int(elapsed) % 5 == 0:
        say(line)


def run_one(spec: RunSpec, settings: Settings, out_dir: Path, data_dir: Path, index: int, total: int,
            one_line: bool = True) -> tuple[Row, list[float]]:
    """One bounded run against fresh servers (on a copy of the migrated database in ``data_dir``).

    Returns its row and its latency samples.
    """
    run_dir = out_dir / "runs" / spec.run_id
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    servers = Servers(spec, data_dir, settings)
    client: subprocess.Popen[bytes] | None = None
    try:
        servers.start()
        servers_started = list(servers.servers)
        sampler = Sampler([p.pid for p in servers.processes], servers.proxy_pids)
        base_rss = sampler.sample().server_rss
        room = create_room(servers.direct_urls[0], spec.run_id)
        sampler.start()
        make = probe_command if spec.client == "probe" else locust_command
        command = make(spec, settings, servers.urls, room, run_dir)
        if spec.server == FLOOR and len(servers.servers) > 1:
            # A floor split over processes shares no state: every command goes to each of them.
            command += ["--command-host", ",".join(servers.direct_urls)]
        elif servers.proxies:
            # Commands go straight to the server: the controller sends one at a time, so through a
            # 300 ms round trip it could not keep 5 a second (measured: 0 to 1 a second got through).
            if spec.client == "probe":
                command += ["--command-host", servers.direct_urls[0]]
            else:
                command[-2:-2] = ["--vsync-command-host", servers.direct_urls[0]]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        started = time.monotonic()
        with open(run_dir / f"{spec.client}.log", "wb") as log:
            client = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            sampler.client_pid = client.pid
            planned = float(command[command.index("-t") + 1].rstrip("s"))
            while client.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > planned + 60:
                    stop_process(client)
                    break
                progress(spec, index, total, elapsed, planned, sampler, settings.quiet, one_line)
                try:
                    client.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
        sampler.stop()
        # The probe's controller writes a dump of its own (the commands) beside its client processes'.
        wait_for_dumps(run_dir, sampler, client_processes(spec, settings) + (spec.client == "probe"))
    finally:
        stop_process(client)
        servers.stop()
    rec = metrics.merge_dumps(sorted(run_dir.glob("stats-*.json")))
    summary = metrics.summarise(rec)
    phases = metrics.phases_of(rec)
    peak_rss = max((s.server_rss for s in sampler.samples), default=base_rss)
    client_total, client_max = sampler.client_cpu_pct(phases.idle if spec.idle_s else phases.busy)
    row = Row.build(spec=spec, summary=summary, server_cpu_pct_idle=sampler.server_cpu_pct(phases.idle),
                    server_cpu_pct_busy=sampler.server_cpu_pct(phases.busy), server_rss_mib=peak_rss / 2**20,
                    server_kib_per_viewer=(peak_rss - base_rss) / 1024 / max(spec.viewers, 1),
                    client_cpu_pct=client_total, client_max_process_cpu_pct=client_max,
                    client_processes=client_processes(spec, settings),
                    command_rate=0.0 if spec.idle_s else settings.command_rate, client=spec.client,
                    proxy_cpu_pct=sampler.proxy_cpu_pct(phases.idle if spec.idle_s else phases.busy),
                    server_processes=len(servers_started), scale_out=bool(spec.processes),
                    server_busiest_process_cpu_pct=sampler.busiest_server_cpu_pct(
                        phases.idle if spec.idle_s else phases.busy))
    if not settings.quiet:
        cpu = row.server_cpu_pct_idle if spec.idle_s else row.server_cpu_pct_busy
        say(f"[{index}/{total}] {spec.run_id}: p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms, "
              f"{row.messages_per_s:.0f} msg/s, server CPU {cpu:.0f} %, "
              f"client CPU {row.client_cpu_pct:.0f} %, errors {row.errors}" + " " * 10)
    return row, [latency for _, latency in rec.latencies]


def sweep(specs: list[RunSpec], settings: Settings, out_dir: Path, meta: dict[str, Any]) -> list[Row]:
    """Run every spec (several at once when they are small), rewriting results.csv and cdf.csv after each
    run so that a cut-short sweep keeps its rows; the caller draws the report once, at the end."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[int, tuple[Row, list[float]]] = {}  # each run's row and CDF
    lock = threading.Lock()
    at_once = parallel_runs(specs, settings)
    with tempfile.TemporaryDirectory(prefix="vsync-bench-") as tmp:
        migrated = Path(tmp) / "migrated"
        migrated.mkdir()
        env = Servers(specs[0], migrated, settings).env()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)

        def run(index: int, spec: RunSpec) -> None:
            data_dir = Path(tmp) / spec.run_id
            shutil.copytree(migrated, data_dir, dirs_exist_ok=True)
            try:
                row, samples = run_one(spec, settings, out_dir, data_dir, index, len(specs), one_line=at_once == 1)
            except Exception as exc:  # one broken run must not lose a 30-minute sweep
                say(f"[{index}/{len(specs)}] {spec.run_id} failed: {type(exc).__name__}: {exc}")
                return
            cdf = cdf_of(samples)
            with lock:
                done[index] = row, cdf
                ordered = [done[i] for i in sorted(done)]
                write_tables(out_dir, [r for r, _ in ordered], {r.run_id: quantiles for r, quantiles in ordered},
                             meta)

        with ThreadPoolExecutor(max_workers=at_once) as pool:
            for future in [pool.submit(run, index, spec) for index, spec in enumerate(specs, start=1)]:
                future.result()
    return [done[i][0] for i in sorted(done)]
