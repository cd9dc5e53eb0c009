from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import LiveServer, migrate, server_env


@pytest.fixture(scope="session")
def push_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real daphne server (runserver) whose SSE heartbeat ticks every second."""
    data_dir: Path = tmp_path_factory.mktemp("push-server")
    env = server_env(data_dir, VSYNC_SSE_HEARTBEAT_S="1")
    migrate(env)
    server = LiveServer(env=env).start()
    yield server
    server.stop()
