"""Many writers, several processes, one database: versions stay contiguous, nothing is lost.

Runs on SQLite (one file, WAL) and on a real PostgreSQL server from Debian's packages.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.support.postgres import PostgresServer
from tests.support.servers import ROOT, migrate, server_env

PROCESSES = 3
THREADS = 4
PER_THREAD = 20  # 3 x 4 x 20 = 240 commands
LOG_QUERY = ("SELECT e.version, e.author, e.command FROM rooms_roomevent e JOIN rooms_room r ON r.id = e.room_id "
             "WHERE r.slug = 'demo' ORDER BY e.version")
CURRENT_QUERY = "SELECT version FROM rooms_room WHERE slug = 'demo'"

Query = Callable[[str], list[tuple]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[tuple[dict[str, str], Query]]:
    """The environment of the worker processes, and a way to query their database."""
    if request.param == "sqlite":

        def sqlite_query(sql: str) -> list[tuple]:
            with sqlite3.connect(tmp_path / "db.sqlite3") as db:
                return db.execute(sql).fetchall()

        yield server_env(tmp_path), sqlite_query
        return
    server = PostgresServer().start()

    def postgres_query(sql: str) -> list[tuple]:
        with psycopg.connect(server.url.replace("postgres://", "postgresql://")) as db:
            return db.execute(sql).fetchall()

    try:
        yield server_env(tmp_path, DATABASE_URL=server.url), postgres_query
    finally:
        server.stop()


def test_concurrent_writers_in_several_processes_lose_nothing(database):
    env, query = database
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
    assert len(accepted) > PROCESSES * THREADS  # most commands are newer than the version they meet
    versions = sorted(version for version, _, _ in accepted)
    assert versions == list(range(2, len(accepted) + 2))

    log = [(version, author, (command if isinstance(command, dict) else json.loads(command)).get("client_ms"))
           for version, author, command in query(LOG_QUERY)]
    assert [version for version, _, _ in log] == list(range(1, len(accepted) + 2))
    assert query(CURRENT_QUERY)[0][0] == len(accepted) + 1
    assert set(log[1:]) == set(accepted)
    keys = [(client_ms, author) for _, author, client_ms in log[1:]]
    assert keys == sorted(keys), "every accepted version is newer than the one before it"
