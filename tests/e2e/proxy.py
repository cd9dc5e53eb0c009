"""loadtests.netem's user-space link in a thread of this process: the browser tests' slow network."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from loadtests.netem import Netem, Shape


@dataclass
class DelayProxy:
    """Listens on 127.0.0.1:``port`` and forwards to ``upstream_port``, ``delay_ms`` ± ``jitter_ms`` each way.

    Chunks keep their order (a late chunk holds back the next one, as TCP would).
    """

    upstream_port: int
    delay_ms: float = 100.0
    jitter_ms: float = 10.0
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _netem: Netem | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the delay proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        if self._netem is not None and self._netem.server is not None:
            self._netem.server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        # netem's shape is a round trip: twice the one-way delay, and twice the one-way jitter.
        shape = Shape(rtt_ms=2 * self.delay_ms, jitter_ms=2 * self.jitter_ms)
        self._netem = self._loop.run_until_complete(Netem(self.upstream_port, shape, port=self.port).start())
        self.port = self._netem.port
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()
