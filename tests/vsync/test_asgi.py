"""vsync's ASGI entry point under the servers people run by hand."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import websockets

from tests.support.servers import LiveServer, free_port, migrate, server_env


def test_uvicorn_run_by_hand_without_interface_flag_serves_http_and_websockets(tmp_path):
    # vsync.launcher passes --interface asgi3; a plain `uvicorn vsync.asgi:application`
    # guesses ASGI 2 from the callable and must work all the same.
    env = server_env(tmp_path)
    migrate(env)
    port = free_port()
    server = LiveServer(env=env, port=port, command=[sys.executable, "-m", "uvicorn", "vsync.asgi:application",
                                                     "--host", "127.0.0.1", "--port", str(port),
                                                     "--log-level", "warning"]).start()
    try:
        assert httpx.get(f"{server.url}/api/time").status_code == 200
        assert httpx.get(f"{server.url}/api/rooms/demo/state").json()["room"] == "demo"

        async def first_message() -> dict:
            async with websockets.connect(f"{server.ws_url}/ws/rooms/demo") as socket:
                return json.loads(await socket.recv())

        assert asyncio.run(first_message())["type"] == "state"
    finally:
        server.stop()
