"""Strata's exceptions.

    StrataError
    ├── ConfigError          a setting is invalid; the message names it
    ├── DecodeError          one OTLP item or body could not be decoded
    ├── CollectError         a collector could not read its source at all
    │   └── CollectorUnavailable   the source is absent for good (no GPU, no driver)
    ├── StoreError           the DuckDB store failed or is locked by another process
    └── BackpressureError    the write queue is full; retry later
        └── StoreFailedError     the store hit a fatal error; retry after the agent restarts
"""

from __future__ import annotations


class StrataError(Exception):
    """Base class of every error Strata raises on purpose."""


class ConfigError(StrataError):
    """A configuration value is invalid."""


class DecodeError(StrataError):
    """An OTLP body or item is malformed."""

    def __init__(self, reason: str, *, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


class CollectError(StrataError):
    """A collector could not read its source."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


class CollectorUnavailable(CollectError):
    """The collector's source does not exist on this machine; it stays off."""


class StoreError(StrataError):
    """The store could not be opened or written."""


class BackpressureError(StrataError):
    """The write queue is full."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"write queue full, retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


class StoreFailedError(BackpressureError):
    """DuckDB invalidated the database (a fatal I/O error): nothing more can be committed."""

    def __init__(self, reason: str) -> None:
        StrataError.__init__(self, f"store unavailable after a fatal error: {reason}")
        self.retry_after_s = 5
        self.reason = reason
