"""Infrastructure detectors: GPU thermal and power-cap throttling, Xid/ECC faults, fans.

They read DCGM/NVML series per GPU (host x device). Throttling comes from the clocks event
reasons bitmask (``DCGM_FI_DEV_CLOCKS_EVENT_REASONS``) or from the per-reason series the
NVML collector derives (``gpu.throttle.*``), as the fraction of samples per minute with the
reason set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from strata.agent.model import Finding, Layer
from strata.analytics.base import shift_findings
from strata.analytics.baseline import ShiftRule

if TYPE_CHECKING:
    from strata.agent.store.window import SampleSeries, Window

THERMAL_REASONS = 0x20 | 0x40  # SW / HW thermal slowdown
POWER_REASONS = 0x4 | 0x80  # SW power cap / HW power brake
_FLAG_RULE = ShiftRule(direction="up", ratio=1.0, z=0.0, min_delta=0.5, floor=0.5, current=2,
                       min_points=2, recover=3)


def _gpu(s: SampleSeries) -> str:
    return f"GPU {s.device or '?'} on {s.host or '?'}"


def _gpu_key(s: SampleSeries) -> str:
    return f"gpu:{s.host or ''}|{s.device or ''}"


def _flag_findings(
    window: Window, series: Sequence[SampleSeries], *, kind: str, signal: str
) -> Iterable[Finding]:
    seen: set[str] = set()
    for s in series:
        key = _gpu_key(s)
        if key in seen:  # bitmask and derived series of one GPU: judge once
            continue
        found = shift_findings(
            window, s.mean, _FLAG_RULE, kind=kind, layer=Layer.INFRASTRUCTURE, signal=signal,
            unit="1", key=key, what=_gpu(s), host=s.host,
        )
        if found:
            seen.add(key)
        yield from found


class GPUThermalDetector:
    """GPU temperature far above its baseline, and thermal clock throttling."""

    kind = "gpu_thermal"
    temperature = ShiftRule(direction="up", ratio=1.0, z=4.0, min_delta=12.0, floor=75.0,
                            current=3, min_points=2, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["gpu.temperature"]):
            yield from shift_findings(
                window, s.mean, self.temperature, kind=self.kind, layer=Layer.INFRASTRUCTURE,
                signal="gpu.temperature", unit="Cel", key=_gpu_key(s), what=_gpu(s),
                host=s.host,
            )
        throttled = [*window.clock_reason_series(THERMAL_REASONS),
                     *window.sample_series(["gpu.throttle.thermal", "gpu.throttle.hw_thermal",
                                            "gpu.throttle.sw_thermal"])]
        yield from _flag_findings(window, throttled, kind=self.kind,
                                  signal="gpu.throttle.thermal")


class GPUPowerThrottleDetector:
    """GPU clocks held down by the power cap (SW power cap or HW power brake), when it hurts.

    Datacenter GPUs hit their SW power cap at peak load all the time; capping alone is an
    ``info`` finding (never an incident). It is a warning only when it is new and costs
    clock speed: the GPU never capped before at similar utilisation (within
    ``SIMILAR_UTIL`` points), and its SM clock while capped is ``CLOCK_DROP`` or more below
    its own clock when not capped at similar utilisation (any uncapped time when there is
    none). Without clock data the harm cannot be shown: ``info``.
    """

    kind = "gpu_power_throttle"
    CLOCK_DROP = 0.10
    SIMILAR_UTIL = 15.0

    def detect(self, window: Window) -> Iterable[Finding]:
        throttled = [*window.clock_reason_series(POWER_REASONS),
                     *window.sample_series(["gpu.throttle.power", "gpu.throttle.sw_power_cap",
                                            "gpu.throttle.hw_power_brake"])]
        flags = {_gpu_key(s): s.mean for s in reversed(throttled)}
        clocks = {_gpu_key(s): s.mean for s in window.sample_series(["gpu.clock.sm"])}
        utils = {_gpu_key(s): s.mean for s in window.sample_series(["gpu.utilization"])}
        for f in _flag_findings(window, throttled, kind=self.kind, signal="gpu.throttle.power"):
            start = (f.started_at_ns - window.start_ns) // window.bucket_ns
            detect = (f.detected_at_ns - window.start_ns) // window.bucket_ns
            if not self._hurts(flags[f.key], clocks.get(f.key), utils.get(f.key), start, detect):
                f = replace(f, severity="info", summary=f.summary + " (routine power capping: "
                            "capped at this load before, or clocks held)")
            yield f

    def _hurts(self, capped: np.ndarray, clock: np.ndarray | None, util: np.ndarray | None,
               start: int, detect: int) -> bool:
        while start > 0 and capped[start - 1] >= 0.5:  # the streak began before the finding
            start -= 1
        before = np.arange(start)
        similar = np.ones(start, dtype=bool)
        if util is not None and np.any(~np.isnan(util[start:detect + 1])):
            level = float(np.nanmedian(util[start:detect + 1]))
            with np.errstate(invalid="ignore"):
                similar = np.abs(util[:start] - level) <= self.SIMILAR_UTIL
        if np.any(capped[:start][similar] >= 0.5):
            return False  # routine: it capped at this load before
        if clock is None or not np.any(~np.isnan(clock[start:detect + 1])):
            return False
        free = before[(capped[:start] < 0.5) & similar]
        if not np.any(~np.isnan(clock[free])):
            free = before[capped[:start] < 0.5]
        if not np.any(~np.isnan(clock[free])):
            return False
        now = float(np.nanmedian(clock[start:detect + 1]))
        return now < (1 - self.CLOCK_DROP) * float(np.nanmedian(clock[free]))


class GPUFaultDetector:
    """A new Xid error code, uncorrectable ECC errors counting up, or a GPU lost (``gpu.up``
    dropping to 0: fallen off the bus, hung calls, driver gone)."""

    kind = "gpu_fault"
    rule = ShiftRule(direction="up", ratio=1.0, z=0.0, min_delta=1.0, floor=1.0, current=1,
                     min_points=1, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["gpu.xid"]):
            for f in shift_findings(
                window, s.max, self.rule, kind=self.kind, layer=Layer.INFRASTRUCTURE,
                signal="gpu.xid", unit="1", key=_gpu_key(s), what=_gpu(s), host=s.host,
            ):
                yield _critical(f, f"Xid {f.current:.0f} on {_gpu(s)}")
        ecc = window.sample_series(["gpu.ecc.uncorrected.volatile",
                                    "gpu.ecc.uncorrected.aggregate"])
        for s in ecc:
            increase = np.diff(s.max, prepend=np.nan)
            for f in shift_findings(
                window, increase, self.rule, kind=self.kind, layer=Layer.INFRASTRUCTURE,
                signal="gpu.ecc.uncorrected", unit="1", key=_gpu_key(s), what=_gpu(s),
                host=s.host,
            ):
                yield _critical(f, f"uncorrectable ECC errors on {_gpu(s)}")
        for s in window.sample_series(["gpu.up"]):
            # Judge "down" as a 0..1 flag so the flag rule applies unchanged; the minimum
            # catches a GPU lost for part of a bucket.
            for f in shift_findings(
                window, 1.0 - s.min, _FLAG_RULE, kind=self.kind, layer=Layer.INFRASTRUCTURE,
                signal="gpu.up", unit="1", key=_gpu_key(s), what=_gpu(s), host=s.host,
            ):
                yield _critical(f, f"{_gpu(s)} lost (gpu.up=0)")


def _critical(f: Finding, summary: str) -> Finding:
    return Finding(f.kind, f.layer, f.signal, f.started_at_ns, f.detected_at_ns, f.baseline,
                   f.current, f.unit, "critical", summary, f.service, f.host, f.key,
                   f.ended_at_ns)


class GPUFanDetector:
    """A GPU fan slowing to half its usual speed or less, and below 25% (failing or
    stopped): fans that spun up for a hot spell and settle back are not failing."""

    kind = "gpu_fan_failure"
    rule = ShiftRule(direction="down", ratio=2.0, z=4.0, min_delta=15.0, floor=25.0,
                     current=2, min_points=2, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["gpu.fan.speed"]):
            for f in shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.INFRASTRUCTURE,
                signal="gpu.fan.speed", unit="%", key=_gpu_key(s), what=_gpu(s), host=s.host,
            ):
                yield _critical(f, f"fan of {_gpu(s)}: {f.baseline:.0f}% -> {f.current:.0f}%")


INFRA_DETECTORS = (
    GPUThermalDetector(),
    GPUPowerThrottleDetector(),
    GPUFaultDetector(),
    GPUFanDetector(),
)
