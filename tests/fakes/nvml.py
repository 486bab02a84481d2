"""A pynvml-shaped fake: the only fake in the test suite (CI has no GPU).

``FakeNVML`` is a real ``types.ModuleType`` exposing the functions ``NVMLCollector`` calls,
with the real library's constants and error classes re-exported from ``pynvml``. Errors are
raised as ``pynvml.NVMLError(code)``, which pynvml maps to its subclasses
(``NVMLError_NotSupported``, ``NVMLError_GpuIsLost`` ...), so the collector's real error paths
run. Values are plain data on ``FakeGPU``; tests change them between polls.
"""

from __future__ import annotations

import threading
import types
from collections import deque
from dataclasses import dataclass
from typing import Any

import pynvml

NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED


@dataclass
class FakeGPU:
    """One fake board. ``None`` for a field means the board does not support it."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    temperature_c: int | None = 58
    fan_speeds_pct: list[int] | None = None  # None: passively cooled (NOT_SUPPORTED)
    power_mw: int | None = 412_563
    power_limit_mw: int | None = 700_000
    energy_mj: int | None = 88_123_456_789
    util_gpu_pct: int | None = 87
    util_mem_pct: int = 41
    mem_total_bytes: int | None = 85_520_809_984
    mem_used_bytes: int = 73_014_444_032
    sm_clock_mhz: int | None = 1980
    mem_clock_mhz: int | None = 2619
    event_reasons: int | None = 0
    ecc: tuple[int, int, int, int] | None = (0, 0, 0, 0)  # sbe vol, dbe vol, sbe agg, dbe agg
    remapped_rows: tuple[int, int, int, int] | None = (0, 0, 0, 0)
    pcie_kbps: tuple[int, int] | None = (51_234, 20_911)
    xid_supported: bool = True
    lost: bool = False  # every call raises NVML_ERROR_GPU_IS_LOST
    hang: threading.Event | None = None  # calls block until this event is set
    calls: int = 0


@dataclass
class _EventData:
    device: Any
    eventType: int
    eventData: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    free: int
    used: int


@dataclass
class _Handle:
    index: int


class FakeNVML(types.ModuleType):
    """Drop-in for the ``pynvml`` module, backed by a list of ``FakeGPU``."""

    def __init__(self, gpus: list[FakeGPU] | None = None, *, init_error: int | None = None):
        super().__init__("fake_pynvml")
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError", "nvmlClocks", "nvmlEventType")):
                setattr(self, name, getattr(pynvml, name))
        self.gpus: list[FakeGPU] = list(gpus or [])
        self.init_error = init_error
        self.initialised = False
        self.init_calls = 0
        self.shutdown_calls = 0
        self.xid_queue: deque[tuple[int, int]] = deque()  # (gpu index, xid)
        self.event_sets: dict[int, list[int]] = {}
        self.freed_event_sets: list[int] = []
        self._next_set = 1
        self.count_calls: dict[str, int] = {}

    # -- helpers for tests ---------------------------------------------------------------

    def raise_xid(self, index: int, xid: int) -> None:
        self.xid_queue.append((index, xid))

    def _gpu(self, handle: _Handle) -> FakeGPU:
        self._count("device")
        gpu = self.gpus[handle.index]
        gpu.calls += 1
        if gpu.hang is not None:
            gpu.hang.wait()
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _count(self, name: str) -> None:
        self.count_calls[name] = self.count_calls.get(name, 0) + 1

    def _check_init(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    @staticmethod
    def _supported(value: Any) -> Any:
        if value is None:
            raise pynvml.NVMLError(NOT_SUPPORTED)
        return value

    # -- the pynvml surface NVMLCollector uses ------------------------------------------

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check_init()
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._supported(self._gpu(handle).temperature_c)

    def nvmlDeviceGetNumFans(self, handle: _Handle) -> int:
        return len(self._supported(self._gpu(handle).fan_speeds_pct))

    def nvmlDeviceGetFanSpeed_v2(self, handle: _Handle, fan: int) -> int:
        return self._supported(self._gpu(handle).fan_speeds_pct)[fan]

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return self._supported(self._gpu(handle).power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return self._supported(self._gpu(handle).power_limit_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        return self._supported(self._gpu(handle).energy_mj)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> _Utilization:
        gpu = self._gpu(handle)
        return _Utilization(self._supported(gpu.util_gpu_pct), gpu.util_mem_pct)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle) -> _Memory:
        gpu = self._gpu(handle)
        total = self._supported(gpu.mem_total_bytes)
        return _Memory(total, total - gpu.mem_used_bytes, gpu.mem_used_bytes)

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        gpu = self._gpu(handle)
        if clock == pynvml.NVML_CLOCK_SM:
            return self._supported(gpu.sm_clock_mhz)
        if clock == pynvml.NVML_CLOCK_MEM:
            return self._supported(gpu.mem_clock_mhz)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:
        return self._supported(self._gpu(handle).event_reasons)

    def nvmlDeviceGetTotalEccErrors(self, handle: _Handle, err: int, counter: int) -> int:
        ecc = self._supported(self._gpu(handle).ecc)
        return ecc[err + 2 * counter]

    def nvmlDeviceGetRemappedRows(self, handle: _Handle) -> tuple[int, int, int, int]:
        return self._supported(self._gpu(handle).remapped_rows)

    def nvmlDeviceGetPcieThroughput(self, handle: _Handle, counter: int) -> int:
        return self._supported(self._gpu(handle).pcie_kbps)[counter]

    def nvmlEventSetCreate(self) -> int:
        self._check_init()
        handle = self._next_set
        self._next_set += 1
        self.event_sets[handle] = []
        return handle

    def nvmlDeviceGetSupportedEventTypes(self, handle: _Handle) -> int:
        gpu = self._gpu(handle)
        return pynvml.nvmlEventTypeXidCriticalError if gpu.xid_supported else 0

    def nvmlDeviceRegisterEvents(self, handle: _Handle, types_: int, event_set: int) -> None:
        self._gpu(handle)
        self.event_sets[event_set].append(handle.index)

    def nvmlEventSetWait(self, event_set: int, timeout_ms: int) -> _EventData:
        assert timeout_ms == 0, "the collector must never block on events"
        registered = self.event_sets.get(event_set, [])
        while self.xid_queue:
            index, xid = self.xid_queue.popleft()
            if index in registered:
                return _EventData(_Handle(index), pynvml.nvmlEventTypeXidCriticalError, xid)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlEventSetFree(self, event_set: int) -> None:
        self.event_sets.pop(event_set, None)
        self.freed_event_sets.append(event_set)
