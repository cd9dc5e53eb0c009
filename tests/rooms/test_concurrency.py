"""Many writers, several processes, one SQLite file: versions stay contiguous, nothing is lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from tests.support.servers import ROOT, migrate, server_env

PROCESSES = 3
THREADS = 4
PER_THREAD = 20  # 3 x 4 x 20 = 240 commands


def test_concurrent_writers_in_several_processes_lose_nothing(tmp_path):
    env = server_env(tmp_path)
    migrate(env)
    workers = [
        subprocess.Popen([sys.executable, "-m", "tests.rooms.concurrency_worker", f"p{n}", str(THREADS),
                          str(PER_THREAD), "demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for n in range(PROCESSES)
    ]
    reports = []
    for worker in workers:
        out, _ = worker.communicate(timeout=240)
        assert worker.returncode == 0, out
        reports.append(json.loads(out))

    accepted = [tuple(row) for report in reports for row in report["accepted"]]
    stale = sum(report["stale"] for report in reports)
    assert len(accepted) + stale == PROCESSES * THREADS * PER_THREAD
    versions = sorted(version for version, _, _ in accepted)
    assert versions == list(range(2, len(accepted) + 2))

    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        log = db.execute("SELECT e.version, e.author, json_extract(e.command, '$.client_ms') FROM rooms_roomevent e "
                         "JOIN rooms_room r ON r.id = e.room_id WHERE r.slug = 'demo' ORDER BY e.version").fetchall()
        current = db.execute("SELECT version FROM rooms_room WHERE slug = 'demo'").fetchone()[0]
    assert [version for version, _, _ in log] == list(range(1, len(accepted) + 2))
    assert current == len(accepted) + 1
    assert {(v, a, ms) for v, a, ms in log[1:]} == set(accepted)
    keys = [(ms, author) for _, author, ms in log[1:]]
    assert keys == sorted(keys), "every accepted version is newer than the one before it"
