"""uvicorn's h11 protocol with a header read timeout (RELIABILITY I9, slowloris).

uvicorn closes idle keep-alive connections but puts no deadline on a client that is still
sending its request line and headers, so connections dribbling a byte at a time stay open
for ever. Here every request's headers must be complete within ``read_header_timeout_s``
of their first byte (or of the connection opening); otherwise the connection is closed,
as Go's ``http.Server.ReadHeaderTimeout`` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(read_header_timeout_s: float) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass that enforces *read_header_timeout_s*."""

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # the next request's headers are pending
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(read_header_timeout_s,
                                                          self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutH11Protocol
