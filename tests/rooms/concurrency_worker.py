"""Run as a process by test_concurrency: many threads apply commands to one room.

Prints one JSON object: the accepted (version, client_id, client_ms) triples and
the count of stale refusals. Any other outcome (an error, a lock timeout) exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsync.settings")
django.setup()

from django.db import connection  # noqa: E402

from rooms.services import room_apply_command  # noqa: E402
from rooms.state import Command, Rejected  # noqa: E402


def main(label: str, threads: int, per_thread: int, slug: str) -> None:
    accepted: list[tuple[int, str, float]] = []
    stale = 0
    errors: list[str] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        nonlocal stale
        client_id = f"{label}-t{index}"
        try:
            for n in range(per_thread):
                command = Command(type="seek", client_id=client_id, client_ms=time.time() * 1000.0,
                                  position=float(n))
                result = room_apply_command(slug=slug, command=command)
                with lock:
                    if isinstance(result, Rejected):
                        assert result.reason == "stale", result
                        stale += 1
                    else:
                        accepted.append((result.version, client_id, command.client_ms))
        except Exception as exc:  # reported, and fails the test
            with lock:
                errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"accepted": accepted, "stale": stale, "errors": errors}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
