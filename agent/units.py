"""Time units in nanoseconds, the one clock unit of Strata's records (OTLP's ``*_unix_nano``),
and the energy counter units Strata converts to Wh.

A leaf: imports nothing of the project, so every package may use it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DAY_NS", "HOUR_NS", "MINUTE_NS", "NS_PER_MS", "NS_PER_S", "WH_PER_UNIT"]

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS_PER_S
HOUR_NS: Final = 60 * MINUTE_NS
DAY_NS: Final = 24 * HOUR_NS

# Wh per unit of a GPU energy counter (DCGM and NVML report mJ; an exporter may use others)
WH_PER_UNIT: Final = {"mJ": 1 / 3_600_000, "J": 1 / 3600, "kJ": 1 / 3.6, "Wh": 1.0,
                      "kWh": 1000.0}
