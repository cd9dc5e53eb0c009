"""``make serve``: vsync as it would run on the internet, on this one machine, in the foreground.

    python -m vsync.deploy.serve        # HOST, PORT, WORKERS, TLS_CERT/TLS_KEY, REDIS_URL, DATABASE_URL ...

Debian's nginx on HOST:PORT (TLS, HTTP/2) in front of WORKERS uvicorn processes that share
rooms through Redis and store in PostgreSQL. Redis and PostgreSQL are started here, with
their data under the data folder, unless REDIS_URL / DATABASE_URL point elsewhere. A worker
that dies is started again; Ctrl-C or SIGTERM stops everything this started.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import multiprocess

from vsync import launcher

DEPLOY_DIR = Path(__file__).resolve().parent
NGINX_TEMPLATE = DEPLOY_DIR / "nginx.conf"
# nginx's internal location for media the workers hand over (settings.VSYNC_X_ACCEL_MEDIA).
X_ACCEL_PREFIX = "/_vsync_media/"
# rooms.api.media: room for the multipart framing around an upload; subtitles are at most 1 MiB.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SUBTITLE_MAX_BYTES = 1024 * 1024
DEFAULT_UPLOAD_MAX_BYTES = 512 * 1024**2  # vsync.settings' default: one make serve, one limit
# The contract's connection cap per address (VSYNC_MAX_CONNECTIONS_PER_ADDRESS) is the
# workers' to enforce with 429/4429; nginx's own cap sits a little above it.
DEFAULT_CONNECTIONS_PER_ADDRESS = 1000
HSTS_SECONDS = 31536000
SUPERVISE_EVERY_S = 0.5


@dataclass
class ServeConfig:
    """Everything make serve reads from the environment, with its defaults."""

    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 2
    data_dir: Path = launcher.ROOT / ".data"
    server_names: list[str] = field(default_factory=list)
    tls_cert: str = ""
    tls_key: str = ""
    redis_url: str = ""
    database_url: str = ""
    secret_key: str = ""
    metrics_token: str = ""
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    connections_per_address: int = DEFAULT_CONNECTIONS_PER_ADDRESS
    requests_per_s: int = 400
    # Whose X-Forwarded-For the workers believe: this machine's nginx by default; with nginx
    # on other hosts (README, more machines) their addresses, comma-separated.
    trusted_proxies: str = "127.0.0.1"
    # A plain-HTTP listener on loopback only (VSYNC_NGINX_PLAIN_PORT), off by default: for
    # measuring the proxy's cost with clients that speak no TLS (loadtests.probe).
    plain_port: int = 0
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(cls, env: dict[str, str]) -> ServeConfig:
        host = env.get("HOST", "127.0.0.1")
        names = [n.strip() for n in env.get("SERVER_NAME", "").split(",") if n.strip()]
        if not names:
            names = ["localhost", "127.0.0.1"] if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") \
                else [host]
        return cls(host=host, port=int(env.get("PORT", "8443")), workers=int(env.get("WORKERS", "2")),
                   data_dir=Path(env.get("VSYNC_DATA_DIR", launcher.ROOT / ".data")).resolve(), server_names=names,
                   tls_cert=env.get("TLS_CERT", ""), tls_key=env.get("TLS_KEY", ""),
                   redis_url=env.get("REDIS_URL", ""), database_url=env.get("DATABASE_URL", ""),
                   secret_key=env.get("SECRET_KEY", ""), metrics_token=env.get("METRICS_TOKEN", ""),
                   upload_max_bytes=int(env.get("VSYNC_UPLOAD_MAX_BYTES", str(DEFAULT_UPLOAD_MAX_BYTES))),
                   connections_per_address=int(env.get("VSYNC_MAX_CONNECTIONS_PER_ADDRESS",
                                                       str(DEFAULT_CONNECTIONS_PER_ADDRESS))),
                   requests_per_s=int(env.get("VSYNC_NGINX_REQUESTS_PER_S", "400")),
                   trusted_proxies=_address_list(env.get("VSYNC_TRUSTED_PROXIES", "127.0.0.1")),
                   plain_port=int(env.get("VSYNC_NGINX_PLAIN_PORT", "0") or "0"), env=dict(env))

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "serve"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def origins(self) -> list[str]:
        suffix = "" if self.port == 443 else f":{self.port}"
        return [f"https://{name}{suffix}" for name in self.server_names]


def _address_list(text: str) -> str:
    """``VSYNC_TRUSTED_PROXIES`` as uvicorn's --forwarded-allow-ips takes it; refused when empty or malformed."""
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise SystemExit("VSYNC_TRUSTED_PROXIES is empty: name the proxies' addresses (nginx here: 127.0.0.1)")
    for address in addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise SystemExit(f"VSYNC_TRUSTED_PROXIES: {address!r} is not an address or network") from None
    return ",".join(addresses)


def secret_key(config: ServeConfig) -> str:
    """SECRET_KEY, or the one generated on first use into the data folder (mode 0600)."""
    if config.secret_key:
        return config.secret_key
    path = config.data_dir / "secret_key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def tls_pair(config: ServeConfig) -> tuple[Path, Path]:
    """TLS_CERT/TLS_KEY, or a self-signed pair made with openssl on first use into the data folder."""
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise SystemExit("set both TLS_CERT and TLS_KEY, or neither (a self-signed pair is made)")
        return Path(config.tls_cert).resolve(), Path(config.tls_key).resolve()
    folder = config.data_dir / "tls"
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not (cert.exists() and key.exists()):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        alt = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}"
                       for n in config.server_names)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "397", "-subj", f"/CN={config.server_names[0]}",
                        "-addext", f"subjectAltName={alt}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


def nginx_conf(config: ServeConfig, worker_ports: list[int], cert: Path, key: Path) -> str:
    """The nginx configuration: vsync/deploy/nginx.conf with every {{NAME}} filled in."""
    user = ""
    if os.geteuid() == 0:  # nginx's workers drop root; Debian's nginx user reads the static and media files
        user = "user www-data;" if _user_exists("www-data") else "user nobody nogroup;"
    values = {
        "USER_LINE": user,
        "RUN_DIR": str(config.run_dir / "nginx"),
        "RLIMIT_NOFILE": "16384",
        "WORKER_CONNECTIONS": "8192",
        "REQ_PER_S": str(config.requests_per_s),
        "REQ_BURST": str(config.requests_per_s * 2),
        "CONN_PER_ADDRESS": str(config.connections_per_address + 100),
        "UPSTREAM_SERVERS": "\n        ".join(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
                                               for port in worker_ports),
        "LISTEN": f"[{config.host}]:{config.port}" if ":" in config.host else f"{config.host}:{config.port}",
        "SERVER_NAME": " ".join(config.server_names),
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
        "UPLOAD_BODY_MAX": str(config.upload_max_bytes + MULTIPART_OVERHEAD_BYTES),
        "SUBTITLE_BODY_MAX": str(SUBTITLE_MAX_BYTES + MULTIPART_OVERHEAD_BYTES),
        "STATIC_ROOT": str(config.data_dir / "static"),
        "MEDIA_ROOT": str(Path(config.env.get("VSYNC_MEDIA_ROOT", config.data_dir / "media")).resolve()),
        "DEMO_MEDIA_DIR": str(launcher.ROOT / "rooms" / "media" / "demo"),
        "X_ACCEL": X_ACCEL_PREFIX,
        "PLAIN_LISTEN": f"listen 127.0.0.1:{config.plain_port};" if config.plain_port else "",
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise RuntimeError(f"nginx.conf has a placeholder serve.py does not fill: {text[text.index('{{'):][:40]}")
    return text


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def worker_env(config: ServeConfig, *, secret: str, database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of every worker (and of migrate, collectstatic and check --deploy)."""
    env = {key: value for key, value in config.env.items() if key not in ("HOST", "PORT")}
    env.update(DJANGO_SETTINGS_MODULE="vsync.settings", PYTHONUNBUFFERED="1", DEBUG="false", SECRET_KEY=secret,
               DATABASE_URL=database_url, REDIS_URL=redis_url, VSYNC_DATA_DIR=str(config.data_dir),
               ALLOWED_HOSTS=",".join(config.server_names), CSRF_TRUSTED_ORIGINS=",".join(config.origins()),
               VSYNC_TRUSTED_PROXIES=config.trusted_proxies, VSYNC_X_ACCEL_MEDIA=X_ACCEL_PREFIX, VSYNC_JSON_LOGS="true",
               PROMETHEUS_MULTIPROC_DIR=str(config.run_dir / "prometheus"), SECURE_SSL_REDIRECT="true",
               SECURE_HSTS_SECONDS=str(HSTS_SECONDS), VSYNC_UPLOAD_MAX_BYTES=str(config.upload_max_bytes),
               LOG_LEVEL=config.env.get("LOG_LEVEL", "WARNING"))
    if config.metrics_token:
        env["METRICS_TOKEN"] = config.metrics_token
    return env


@dataclass
class Stack:
    """The processes of make serve, started in order and stopped in reverse."""

    config: ServeConfig
    postgres: launcher.PostgresServer | None = None
    redis: launcher.RedisServer | None = None
    workers: list[launcher.ServerProcess] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Stack:
        config = self.config
        try:
            self._prepare_dirs()
            database_url = config.database_url
            if not database_url:
                self.postgres = launcher.PostgresServer(config.data_dir / "postgres").start()
                database_url = self.postgres.url
            redis_url = config.redis_url
            if not redis_url:
                folder = config.run_dir / "redis"
                self.redis = launcher.RedisServer(data_dir=folder, unix_socket=folder / "redis.sock").start()
                redis_url = self.redis.url
            self.env = worker_env(config, secret=secret_key(config), database_url=database_url,
                                  redis_url=redis_url)
            launcher.migrate(self.env)
            launcher.manage(self.env, "collectstatic", "--noinput", "-v", "0")
            launcher.manage(self.env, "check", "--deploy", "--fail-level", "ERROR")
            for index in range(config.workers):
                port = launcher.free_port()
                self.workers.append(launcher.ServerProcess(
                    env=self.env, port=port, command=launcher.server_command(
                        "uvicorn", port, trusted_proxies=config.trusted_proxies),
                    log_path=config.run_dir / "logs" / f"worker-{index}.log").start(wait=False))
            for worker in self.workers:
                worker.wait()
            self._write_workers()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_dirs(self) -> None:
        run = self.config.run_dir
        for folder in (self.config.data_dir, run, run / "logs", run / "nginx", run / "redis"):
            folder.mkdir(parents=True, exist_ok=True)
        # Gauges of workers that are gone would be summed with the live ones'.
        shutil.rmtree(run / "prometheus", ignore_errors=True)
        (run / "prometheus").mkdir()
        if os.geteuid() == 0:  # nginx's workers (www-data) read static files and media below it
            self.config.data_dir.chmod(self.config.data_dir.stat().st_mode | 0o055)

    def _start_nginx(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed (Debian package nginx); make serve installs it")
        cert, key = tls_pair(self.config)
        conf = self.config.run_dir / "nginx" / "nginx.conf"
        conf.write_text(nginx_conf(self.config, [w.port for w in self.workers], cert, key))
        prefix = str(self.config.run_dir / "nginx")
        command = [binary, "-p", prefix, "-e", str(self.config.run_dir / "nginx" / "error.log"), "-c", str(conf),
                   "-g", "daemon off;"]
        test = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration ({conf}):\n{test.stderr}")
        self.nginx = launcher.spawn(command, self.env, self.config.run_dir / "logs" / "nginx.log")
        deadline = time.monotonic() + 10
        while not _tls_answers(self.config):
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start; see {self.config.run_dir / 'nginx' / 'error.log'}")
            time.sleep(0.05)

    def _write_workers(self) -> None:
        """Which worker is where, for operators and tests: .data/serve/workers.json (and redis.pid)."""
        listing = [{"port": w.port, "pid": w.pid, "log": str(w.log_path)} for w in self.workers]
        (self.config.run_dir / "workers.json").write_text(json.dumps(listing))
        if self.redis is not None and self.redis.process is not None:
            (self.config.run_dir / "redis.pid").write_text(str(self.redis.process.pid))

    def supervise(self) -> None:
        """Start again any worker or Redis that died; leave if nginx did.

        Redis holds nothing durable here (the layer's messages are in flight only): started
        again on its socket, the workers' subscriptions reconnect and viewers resume from
        their last version. PostgreSQL is not watched: while it is down, requests that need
        it answer 503 with Retry-After (vsync.security), and they work again once it is back.
        """
        while True:
            time.sleep(SUPERVISE_EVERY_S)
            if self.nginx is None or self.nginx.poll() is not None:
                raise SystemExit("nginx stopped; stopping everything")
            if self.redis is not None and (self.redis.process is None or self.redis.process.poll() is not None):
                self._restart_redis()
            for worker in self.workers:
                if not worker.alive():
                    self._restart(worker)

    def _restart(self, worker: launcher.ServerProcess) -> None:
        dead = worker.pid
        code = worker.process.returncode if worker.process else None
        if dead is not None:  # its gauges (open connections) leave the sums
            multiprocess.mark_process_dead(dead, path=self.env["PROMETHEUS_MULTIPROC_DIR"])  # type: ignore[no-untyped-call]
        print(json.dumps({"ts": round(time.time(), 3), "level": "WARNING", "logger": "vsync.deploy.serve",
                          "message": "worker exited; starting it again", "port": worker.port, "pid": dead,
                          "returncode": code}), flush=True)
        worker.stop()  # ends whatever the dead worker left in its process group
        try:
            worker.start()
        except (RuntimeError, TimeoutError) as exc:
            print(f"worker on port {worker.port} did not come back: {exc}; trying again", flush=True)
        self._write_workers()

    def _restart_redis(self) -> None:
        assert self.redis is not None
        code = self.redis.process.returncode if self.redis.process else None
        print(json.dumps({"ts": round(time.time(), 3), "level": "WARNING", "logger": "vsync.deploy.serve",
                          "message": "redis-server exited; starting it again", "returncode": code}), flush=True)
        self.redis.stop()
        try:
            self.redis.start()
        except TimeoutError as exc:
            print(f"redis-server did not come back: {exc}; trying again", flush=True)
        self._write_workers()

    def stop(self) -> None:
        launcher.stop_process_group(self.nginx)
        self.nginx = None
        for worker in self.workers:
            worker.stop()
        self.workers = []
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tls_answers(config: ServeConfig) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    try:
        with socket.create_connection((host, config.port), timeout=1) as raw, \
                context.wrap_socket(raw, server_hostname=config.server_names[0]):
            return True
    except OSError:
        return False


def main() -> None:
    config = ServeConfig.from_env(dict(os.environ))
    launcher.stop_on_signals()
    with Stack(config) as stack:
        database = f"PostgreSQL in {config.data_dir / 'postgres'}" if stack.postgres else "DATABASE_URL"
        where = [f"database: {database}",
                 f"redis: {stack.redis.url if stack.redis else 'REDIS_URL'}",
                 f"workers (uvicorn): {', '.join(w.url for w in stack.workers)}; logs in {config.run_dir / 'logs'}"]
        print("\n".join(where))
        print(f"vsync: {config.url}/   (Ctrl-C stops everything)", flush=True)
        stack.supervise()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
