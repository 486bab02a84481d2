"""Process logging for ``strata agent``: stderr lines that never take the agent down.

When the log volume is full (or stderr is a closed pipe) a record that cannot be written is
dropped and counted, instead of the stdlib's default of printing a traceback to the same
broken stream for every record. The count is ``strata_log_records_dropped_total``.
"""

from __future__ import annotations

import logging
import threading

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CountingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler that counts the records it failed to write (RELIABILITY F4)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0
        self._count_lock = threading.Lock()

    def handleError(self, record: logging.LogRecord) -> None:
        with self._count_lock:
            self.dropped += 1


def configure(level: str) -> None:
    """Log to stderr at *level* through a ``CountingStreamHandler`` on the root logger."""
    handler = CountingStreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def dropped_records() -> int:
    """Records dropped so far by the root logger's counting handlers."""
    return sum(h.dropped for h in logging.getLogger().handlers
               if isinstance(h, CountingStreamHandler))
