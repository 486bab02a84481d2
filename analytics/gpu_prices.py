"""Public on-demand GPU-hour prices by GPU model, for GPU-time cost without configuration.

The table is ``analytics/data/gpu_prices.toml`` (one row per GPU model, with its source and
date). ``GPUPriceTable.lookup`` takes the model name a GPU reports (NVML
``nvmlDeviceGetName`` / DCGM ``modelName``) and returns the first row whose patterns match,
or None: an unknown GPU is unpriced, never free.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from strata.agent.errors import ConfigError

__all__ = ["GPUPrice", "GPUPriceTable"]

_PACKAGED = "gpu_prices.toml"
_ROW_KEYS = frozenset({"model", "match", "usd_per_gpu_hour", "source", "as_of"})


@dataclass(frozen=True, slots=True)
class GPUPrice:
    """One GPU model's public on-demand price."""

    model: str
    usd_per_gpu_hour: float
    source: str
    as_of: str


class GPUPriceTable:
    """Rows in file order; the first whose pattern matches a GPU's model name wins."""

    def __init__(self, rows: Iterable[tuple[tuple[re.Pattern[str], ...], GPUPrice]]) -> None:
        self._rows = tuple(rows)
        self._memo: dict[str, GPUPrice | None] = {}

    @classmethod
    def packaged(cls) -> GPUPriceTable:
        """The built-in table shipped in ``analytics/data/gpu_prices.toml``."""
        text = resources.files("strata.analytics").joinpath("data", _PACKAGED).read_text("utf-8")
        return cls.from_toml(text, origin=f"analytics/data/{_PACKAGED}")

    @classmethod
    def from_toml(cls, text: str, *, origin: str) -> GPUPriceTable:
        """Parse a GPU price file.

        Raises:
            ConfigError: invalid TOML, an unknown key, a missing field or a bad pattern.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = f"{origin}: not valid TOML: {exc}"
            raise ConfigError(msg) from exc
        raw = data.get("gpus", [])
        if not isinstance(raw, list):
            msg = f"{origin}: gpus must be an array of tables ([[gpus]])"
            raise ConfigError(msg)
        return cls(_row(origin, i, item) for i, item in enumerate(raw))

    @property
    def prices(self) -> tuple[GPUPrice, ...]:
        return tuple(price for _, price in self._rows)

    def lookup(self, gpu_name: str | None) -> GPUPrice | None:
        """The price of the GPU named *gpu_name*, or None when no row matches."""
        if not gpu_name:
            return None
        if gpu_name not in self._memo:
            name = gpu_name.lower()
            found = next((p for pats, p in self._rows if any(r.search(name) for r in pats)), None)
            if len(self._memo) < 1000:  # names arrive from the wire: bounded
                self._memo[gpu_name] = found
            return found
        return self._memo[gpu_name]


def _row(origin: str, i: int, item: Any) -> tuple[tuple[re.Pattern[str], ...], GPUPrice]:
    where = f"{origin}: gpus[{i}]"
    if not isinstance(item, dict):
        msg = f"{where} must be a table"
        raise ConfigError(msg)
    unknown = sorted(set(item) - _ROW_KEYS)
    if unknown:
        msg = f"{where}.{unknown[0]} is not a known key"
        raise ConfigError(msg)
    texts = [item.get(k) for k in ("model", "source", "as_of")]
    price = item.get("usd_per_gpu_hour")
    patterns = item.get("match")
    if (
        not all(isinstance(t, str) and t for t in texts)
        or isinstance(price, bool) or not isinstance(price, int | float) or price < 0
        or not isinstance(patterns, list) or not patterns
        or not all(isinstance(p, str) and p for p in patterns)
    ):
        msg = f"{where} needs model, source, as_of, usd_per_gpu_hour >= 0 and a match list"
        raise ConfigError(msg)
    try:
        compiled = tuple(re.compile(p) for p in patterns)
    except re.error as exc:
        msg = f"{where}.match has an invalid pattern: {exc}"
        raise ConfigError(msg) from exc
    model, source, as_of = (str(t) for t in texts)
    return compiled, GPUPrice(model, float(price), source, as_of)
