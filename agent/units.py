"""Time units in nanoseconds, the one clock unit of Strata's records (OTLP's ``*_unix_nano``).

A leaf: imports nothing of the project, so every package may use it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DAY_NS", "HOUR_NS", "MINUTE_NS", "NS_PER_MS", "NS_PER_S"]

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS_PER_S
HOUR_NS: Final = 60 * MINUTE_NS
DAY_NS: Final = 24 * HOUR_NS
