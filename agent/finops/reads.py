"""Reads behind the rightsizing view: GPU hours and model profiles.

The SQL is ``strata.agent.store.costs`` (DuckDB) or the hub's ClickHouse, through the store
seam (``ReportReads``); this module turns its rows into the rightsizing
inputs (``strata.analytics.rightsizing``), converting counter energy to Wh.
"""

from __future__ import annotations

from typing import Final

from strata.agent.store.seam import ReportReads
from strata.analytics.rightsizing import WH_PER_ENERGY_UNIT, GPUHour, ModelProfile

__all__ = ["gpu_hours", "model_profiles"]

SMALL_INPUT_TOKENS: Final = 2000
SMALL_OUTPUT_TOKENS: Final = 256


def gpu_hours(reads: ReportReads, *, since_ns: int, until_ns: int) -> list[GPUHour]:
    """Each GPU's hourly mean utilisation (%), mean power (W) and counter energy (Wh).

    Utilisation reported as a ratio (unit ``1``) is scaled to percent. Energy is the
    counter's increase within the hour (a drop is a reset: the new reading counts).
    """
    out = []
    for host, device, hour, util, power, inc, unit in reads.gpu_hourly_usage(
        since_ns=since_ns, until_ns=until_ns
    ):
        factor = WH_PER_ENERGY_UNIT.get(unit) if unit is not None else None
        energy = inc * factor if inc is not None and factor is not None else None
        out.append(GPUHour(host, device, int(hour), util, power, energy))
    return out


def model_profiles(
    reads: ReportReads,
    *,
    since_ns: int,
    until_ns: int,
    max_input_tokens: int = SMALL_INPUT_TOKENS,
    max_output_tokens: int = SMALL_OUTPUT_TOKENS,
) -> list[ModelProfile]:
    """Per (service, provider, model), token-priced requests and those within the limits."""
    rows = reads.model_usage(since_ns=since_ns, until_ns=until_ns,
                             max_input_tokens=max_input_tokens,
                             max_output_tokens=max_output_tokens)
    return [
        ModelProfile(service, provider, model, int(n), float(usd), int(sn), int(si), int(sc),
                     int(so), float(su))
        for service, provider, model, n, usd, sn, si, sc, so, su in rows
    ]
