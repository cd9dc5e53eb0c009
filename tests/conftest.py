from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps

from tests.support.servers import LiveServer, RedisServer, migrate, server_env


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """The test database is a file, as in production, not Django's shared-cache in-memory SQLite:
    there a background thread's write makes the test's own read fail at once with "database table is
    locked" (shared-cache table locks ignore the busy timeout), where WAL and the timeout let it wait.
    One file per test process (xdist workers included), in RAM where the machine has /dev/shm."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    database.setdefault("TEST", {})["NAME"] = os.path.join(folder, f"vsync-test-{os.getpid()}.sqlite3")


@pytest.fixture(scope="session")
def server_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-data")


@pytest.fixture(scope="session")
def live_server_proc(server_data_dir: Path) -> Iterator[LiveServer]:
    """One real daphne server (runserver) for the session, on SQLite and the in-memory layer."""
    env = server_env(server_data_dir)
    migrate(env)
    server = LiveServer(env=env).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _demo_room(request: pytest.FixtureRequest) -> None:
    """Every test that uses the database finds the demo room the migrations make, whatever ran before
    it in the same process: a transactional test flushes the tables, migration data and all, and under
    pytest-xdist any test may follow one."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or (
        marker is not None and bool(marker.kwargs.get("transaction")))
    if not transactional and marker is None and "db" not in request.fixturenames:
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    importlib.import_module("rooms.migrations.0002_demo_room").create_demo_room(apps, None)


def pytest_configure(config: pytest.Config) -> None:
    """The test process imports vsync.asgi but serves nothing: no end-of-media scheduler, upload
    sweeper or media refresher in it (they would act on the rooms the tests arrange, at moments no test chose:
    under pytest-xdist a refresher started by an earlier file slept through a later test's check).
    Real server processes started by tests run them; a test of the refresher starts its own."""
    from django.conf import settings

    settings.VSYNC_END_SCHEDULER = False
    # Tests call uploads_sweep themselves. Stopping the thread after the fact was not enough: a
    # later first import of vsync.asgi in an xdist worker started it again, and it then logged
    # "no such table" once the worker's test database was gone.
    settings.VSYNC_UPLOAD_SWEEPER = False
    settings.VSYNC_RESOLVE_CHECK_INTERVAL_S = 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an event loop running in the
    main thread for as long as its session-scoped browser lives, and asyncio.run() in the
    transport tests refuses to start inside it."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
