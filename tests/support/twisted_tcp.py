"""A stand-in for twisted.internet.tcp.Server in tests of daphne's fast path (transports.fastwrite)."""

from __future__ import annotations

import socket


class TwistedTcp:
    """The part of twisted.internet.tcp.Server that daphne's fast path reads, over a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket, self.connected, self.disconnecting, self._writeDisconnected = sock, True, False, False
        self.dataBuffer, self.offset, self._tempDataBuffer = b"", 0, []

    def write(self, data: bytes) -> None:  # Twisted queues and sends on the next writable turn
        self._tempDataBuffer.append(data)

    def flush(self) -> None:
        self.dataBuffer, self._tempDataBuffer = self.dataBuffer[self.offset:] + b"".join(self._tempDataBuffer), []
        self.offset = 0
        self.socket.setblocking(True)
        self.socket.sendall(self.dataBuffer)
        self.socket.setblocking(False)
        self.dataBuffer = b""
