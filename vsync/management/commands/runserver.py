"""``manage.py runserver``: daphne's runserver with vsync's guarded server (vsync.daphne_guard).

The ``vsync`` app is listed before ``daphne`` in INSTALLED_APPS, so this command wins.
"""

from __future__ import annotations

from typing import Any

from daphne.management.commands.runserver import Command as DaphneRunserver
from django.conf import settings

from vsync.daphne_guard import GuardedServer
from vsync.http_guard import BODY_MIN_BYTES_PER_S, HEADER_TIMEOUT_S


class Command(DaphneRunserver):
    server_cls = GuardedServer

    def inner_run(self, *args: Any, **options: Any) -> Any:
        if options.get("use_asgi", True):
            self.stdout.write(banner(self.addr, self.port))
        return super().inner_run(*args, **options)


def banner(addr: str, port: str) -> str:
    """What `make run` prints first: this is a development server, and what it limits."""
    upload_mib = settings.VSYNC_UPLOAD_MAX_BYTES // (1024 * 1024)
    return (f"vsync development server (daphne) on http://{addr}:{port}/ -- DEBUG={settings.DEBUG}.\n"
            "Not for the internet as it is: use `make serve` (TLS proxy, PostgreSQL, Redis, DEBUG off).\n"
            f"Limits: uploads {upload_mib} MiB (VSYNC_UPLOAD_MAX_BYTES), request headers within "
            f"{HEADER_TIMEOUT_S:g} s, bodies at {BODY_MIN_BYTES_PER_S / 1024:g} KiB/s or faster.\n")
