from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import LiveServer, migrate, server_env


@pytest.fixture(scope="module")
def live_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The default server (manage.py runserver, daphne) on a fresh SQLite file."""
    data_dir: Path = tmp_path_factory.mktemp("hardening")
    env = server_env(data_dir, VSYNC_HEADER_TIMEOUT_S="2", VSYNC_BODY_WINDOW_S="2",
                     VSYNC_BODY_MIN_BYTES_PER_S="1024")
    migrate(env)
    server = LiveServer(env=env).start()
    try:
        yield server
    finally:
        server.stop()
