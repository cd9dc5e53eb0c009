"""The proxy's cost and the 100 MiB upload through make serve (issue 13's measurements).

    python -m loadtests.proxy_cost --viewers 1000 --repeat 3      # fan-out through nginx vs direct
    python -m loadtests.proxy_cost --upload                        # 100 MiB upload: 413, worker RSS

Fan-out: one make serve with ONE worker (so that both paths end in the same process),
address limits off; loadtests.probe against nginx's plain-HTTP loopback listener and
then straight against the worker, alternately, per transport. The ratio is nginx's
p50/p99 over the direct one measured in the same run.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import subprocess
import sys
import time

from loadtests.serve_stack import ROOT, ServeStack, rss_mib


def probe(url: str, transport: str, viewers: int, repeat: int) -> str:
    out = subprocess.run([sys.executable, "-m", "loadtests.probe", "--url", url, "--transport", transport,
                          "--viewers", str(viewers), "--repeat", str(repeat), "--commands", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def fanout(args: argparse.Namespace) -> None:
    stack = ServeStack(workers=1).start()
    try:
        worker = int(stack.worker_list()[0]["port"])
        for transport in args.transports:
            through = probe(f"http://127.0.0.1:{stack.plain_port}", transport, args.viewers, args.repeat)
            direct = probe(f"http://127.0.0.1:{worker}", transport, args.viewers, args.repeat)
            print(f"nginx  {through}\ndirect {direct}", flush=True)
    finally:
        stack.stop()


def upload(args: argparse.Namespace) -> None:
    stack = ServeStack(workers=2).start()
    try:
        slug = stack.create_room("upload")
        pids = [int(w["pid"]) for w in stack.worker_list()]
        before = [rss_mib(pid) for pid in pids]
        declared = 100 * 1024 * 1024
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        head = (f"POST /api/rooms/{slug}/media HTTP/1.1\r\nHost: localhost:{stack.port}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {declared}\r\n\r\n").encode()
        sent, answer, started = 0, b"", time.monotonic()
        with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(head)
            chunk = b"\0" * (256 * 1024)
            try:
                while sent < declared:
                    tls.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # nginx answered and closed: the rest is never read
            try:
                answer = tls.recv(4096)
            except OSError:
                pass
        after = [rss_mib(pid) for pid in pids]
        status_line = answer.split(b"\r\n", 1)[0]
        print(f"answer {status_line!r} after "
              f"{time.monotonic() - started:.2f} s; client sent {sent / 2**20:.1f} MiB of {declared / 2**20:.0f} "
              f"before the refusal; worker RSS MiB before {before} after {after}")
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fan-out through nginx vs direct; the 100 MiB upload.")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--transports", nargs="+", default=["sse", "ws"])
    parser.add_argument("--upload", action="store_true")
    args = parser.parse_args(argv)
    upload(args) if args.upload else fanout(args)


if __name__ == "__main__":
    main()
