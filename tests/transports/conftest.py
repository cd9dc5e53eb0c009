from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import LiveServer, migrate, server_env
from tests.transports.inprocess import fresh_hub  # noqa: F401 -- a fixture


@pytest.fixture(scope="session")
def push_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real daphne server (runserver) whose SSE heartbeat ticks every second, with /_hub/stats."""
    data_dir: Path = tmp_path_factory.mktemp("push-server")
    # Address limits off: the tests create a room each, far more than a minute's allowance.
    env = server_env(data_dir, VSYNC_SSE_HEARTBEAT_S="1", VSYNC_HUB_STATS="1", VSYNC_ADDRESS_LIMITS="off")
    migrate(env)
    server = LiveServer(env=env).start()
    yield server
    server.stop()
