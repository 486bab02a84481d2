"""Process logging for ``strata agent``: stderr lines that never take the agent down.

When the log volume is full (or stderr is a closed pipe) a record that cannot be written is
dropped and counted, instead of the stdlib's default of printing a traceback to the same
broken stream for every record. The count is ``strata_log_records_dropped_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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


class RateLimitedLog:
    """One log line per *interval_s* for a recurring error, with the count of those it held
    back: a full disk fails every commit, and the log may sit on that same full volume
    (RELIABILITY F4). The first line of each interval carries the traceback."""

    def __init__(self, logger: logging.Logger, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._held_back = 0
        self._lock = threading.Lock()

    def error(self, message: str, *args: object, exc_info: bool = True) -> bool:
        """Log *message* (``%`` args) unless one was logged within the interval; True if
        logged."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._interval_s:
                self._held_back += 1
                return False
            held_back, self._held_back, self._last = self._held_back, 0, now
        if held_back:
            message += f" (and {held_back} more since the last such line)"
        self._logger.error(message, *args, exc_info=exc_info)
        return True
