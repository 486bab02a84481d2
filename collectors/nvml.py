"""NVMLCollector: GPU health and energy through NVML (module ``pynvml`` from nvidia-ml-py).

One pass per device per ``collect``: every sample of a GPU comes from the same pass. Sample
names are DCGM-exporter field names with DCGM's units (power in W, framebuffer in MiB, energy
in mJ), so a series from this collector and one scraped from dcgm-exporter line up; each unit
conversion happens here, once. Labels follow dcgm-exporter: ``gpu`` (index), ``UUID``,
``modelName``, ``Hostname``.

Failure rules (RELIABILITY.md C7):
- no library / no driver / no GPU at the first init: ``CollectorUnavailable`` (the scheduler
  logs one line and leaves the collector off);
- a field the board does not support (``NVML_ERROR_NOT_SUPPORTED``, e.g. fans on passively
  cooled boards): no sample, and ``strata.collector.unsupported{field}`` counts it;
- a GPU lost mid-run (``GPU_IS_LOST``, a hung call, driver gone): ``gpu.up=0`` for that GPU,
  the others are still read, and NVML is re-initialised with exponential backoff;
- every NVML call runs in a worker thread bounded by ``call_timeout_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

import pynvml
from strata.agent.errors import CollectorUnavailable
from strata.agent.ingest.metric_names import classify_metric
from strata.agent.model import Layer, Sample
from strata.agent.units import NS_PER_S

__all__ = ["THROTTLE_REASONS", "NVMLCollector"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_MIB = 1024 * 1024
# Clock event ("throttle") reason bits -> decoded signal (nvmlClocksEventReason*).
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x1, "gpu.throttle.gpu_idle"),
    (0x2, "gpu.throttle.applications_clocks"),
    (0x4, "gpu.throttle.sw_power_cap"),
    (0x8, "gpu.throttle.hw_slowdown"),
    (0x10, "gpu.throttle.sync_boost"),
    (0x20, "gpu.throttle.sw_thermal"),
    (0x40, "gpu.throttle.hw_thermal"),
    (0x80, "gpu.throttle.hw_power_brake"),
    (0x100, "gpu.throttle.display_clock"),
)
_THERMAL_BITS = 0x20 | 0x40
_POWER_BITS = 0x4 | 0x80
_XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
_MAX_XID_PER_PASS = 64


class _DeviceLost(Exception):
    """The device stopped answering (lost, hung or driver gone)."""


@dataclass(slots=True)
class _GPU:
    index: int
    handle: Any
    uuid: str
    name: str
    up: bool = True
    attributes: dict[str, str] = field(default_factory=dict)


class NVMLCollector:
    """Reads every GPU on this host through NVML.

    Blocking; the scheduler runs it in a worker thread. Its timeout there should exceed
    ``call_timeout_s`` so a hung call is reported here (as ``gpu.up=0``) rather than as a
    timed-out collector.
    """

    def __init__(
        self,
        *,
        nvml: ModuleType = pynvml,
        host: str,
        call_timeout_s: float = 2.0,
        pcie_throughput: bool = False,
        reinit_backoff_s: tuple[float, float] = (5.0, 300.0),
    ) -> None:
        """Create the collector; NVML is initialised on the first ``collect``.

        Args:
            nvml: the ``pynvml`` module (tests pass ``tests/fakes/nvml.py``).
            host: the host name put on every sample and in the ``Hostname`` label.
            call_timeout_s: bound on each NVML call.
            pcie_throughput: also read PCIe TX/RX throughput; each read samples for 20 ms
                inside the driver, so it is off unless asked for.
            reinit_backoff_s: first and maximum delay between re-init attempts after a loss.
        """
        self.name = "nvml"
        self._nvml = nvml
        self.host = host
        self.call_timeout_s = call_timeout_s
        self.pcie_throughput = pcie_throughput
        self._backoff_first, self._backoff_max = reinit_backoff_s
        self._backoff = self._backoff_first
        self._next_reinit_ns: int | None = None
        self._initialised = False
        self._gpus: list[_GPU] = []
        self._event_set: Any = None
        self._executor = self._new_executor()
        self._lock = threading.Lock()
        self.unsupported: dict[tuple[str, str], int] = {}
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """One pass over every GPU.

        Raises:
            CollectorUnavailable: no NVML library, driver or GPU at the first init. Later
                failures never raise: lost GPUs report ``gpu.up=0`` until re-init finds them.
        """
        with self._lock:
            if not self._initialised:
                self._init(now_ns)
            elif self._next_reinit_ns is not None and now_ns >= self._next_reinit_ns:
                self._reinit(now_ns)
            out: list[Sample] = []
            for gpu in self._gpus:
                out.extend(self._read_gpu(gpu, now_ns))
            if self._event_set is not None:
                out.extend(self._read_xids(now_ns))
            return out

    def close(self) -> None:
        """Free the event set and shut NVML down. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shutdown_nvml()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- init ------------------------------------------------------------------------------

    def _init(self, now_ns: int) -> None:
        nv = self._nvml
        try:
            self._call(nv.nvmlInit)
        except _DeviceLost as exc:
            msg = f"nvmlInit did not return within {self.call_timeout_s}s"
            raise CollectorUnavailable(self.name, msg) from exc
        except nv.NVMLError as exc:
            msg = f"no NVIDIA driver or NVML library ({type(exc).__name__})"
            raise CollectorUnavailable(self.name, msg) from exc
        except OSError as exc:
            msg = f"NVML library failed to load: {exc}"
            raise CollectorUnavailable(self.name, msg) from exc
        self._initialised = True
        try:
            self._gpus = self._enumerate()
        except (nv.NVMLError, _DeviceLost) as exc:
            self._shutdown_nvml()
            msg = f"cannot enumerate GPUs ({type(exc).__name__})"
            raise CollectorUnavailable(self.name, msg) from exc
        if not self._gpus:
            self._shutdown_nvml()
            msg = "NVML found no GPU"
            raise CollectorUnavailable(self.name, msg)
        self._event_set = self._register_xid_events()
        names = ", ".join(f"{g.index}:{g.name}" for g in self._gpus)
        logger.info("nvml: %d GPU(s) on %s: %s", len(self._gpus), self.host, names)

    def _enumerate(self) -> list[_GPU]:
        nv = self._nvml
        gpus = []
        for i in range(self._call(nv.nvmlDeviceGetCount)):
            handle = self._call(nv.nvmlDeviceGetHandleByIndex, i)
            uuid = _text(self._call(nv.nvmlDeviceGetUUID, handle))
            name = _text(self._call(nv.nvmlDeviceGetName, handle))
            attrs = {"gpu": str(i), "UUID": uuid, "modelName": name, "Hostname": self.host}
            gpus.append(_GPU(i, handle, uuid, name, attributes=attrs))
        return gpus

    def _register_xid_events(self) -> Any:
        nv = self._nvml
        try:
            event_set = self._call(nv.nvmlEventSetCreate)
        except (nv.NVMLError, _DeviceLost):
            return None
        registered = 0
        for gpu in self._gpus:
            try:
                supported = self._call(nv.nvmlDeviceGetSupportedEventTypes, gpu.handle)
                if supported & _XID_EVENT:
                    self._call(nv.nvmlDeviceRegisterEvents, gpu.handle, _XID_EVENT, event_set)
                    registered += 1
            except (nv.NVMLError, _DeviceLost):
                self._count_unsupported(gpu, "xid_events")
        if not registered:
            self._try(nv.nvmlEventSetFree, event_set)
            return None
        return event_set

    def _reinit(self, now_ns: int) -> None:
        """Shut NVML down and start again; GPUs found again by UUID come back up."""
        nv = self._nvml
        logger.info("nvml: re-initialising after a GPU loss")
        self._shutdown_nvml()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()
        try:
            self._call(nv.nvmlInit)
            self._initialised = True
            fresh = {g.uuid: g for g in self._enumerate()}
        except (nv.NVMLError, _DeviceLost, OSError) as exc:
            self._schedule_reinit(now_ns)
            for gpu in self._gpus:
                gpu.up = False
            logger.warning("nvml: re-init failed (%s); next try in %.0fs", exc, self._backoff)
            return
        for gpu in self._gpus:
            found = fresh.pop(gpu.uuid, None)
            gpu.up = found is not None
            if found is not None:
                gpu.handle = found.handle
        self._gpus.extend(fresh.values())
        self._event_set = self._register_xid_events()
        if all(g.up for g in self._gpus):
            self._next_reinit_ns = None
            self._backoff = self._backoff_first
        else:
            self._schedule_reinit(now_ns)

    def _schedule_reinit(self, now_ns: int) -> None:
        if self._next_reinit_ns is None or now_ns >= self._next_reinit_ns:
            delay = self._backoff
            self._next_reinit_ns = now_ns + int(delay * NS_PER_S)
            self._backoff = min(self._backoff * 2, self._backoff_max)

    def _shutdown_nvml(self) -> None:
        nv = self._nvml
        if self._event_set is not None:
            self._try(nv.nvmlEventSetFree, self._event_set)
            self._event_set = None
        if self._initialised:
            self._try(nv.nvmlShutdown)
            self._initialised = False

    # -- per device ------------------------------------------------------------------------

    def _read_gpu(self, gpu: _GPU, now_ns: int) -> list[Sample]:
        if not gpu.up:
            return [self._sample(gpu, now_ns, "gpu.up", 0.0, "1")]
        out: list[Sample] = []
        try:
            for name, value, unit, extra in self._fields(gpu):
                out.append(self._sample(gpu, now_ns, name, value, unit, extra))
        except _DeviceLost as exc:
            gpu.up = False
            self._schedule_reinit(now_ns)
            logger.warning("nvml: GPU %s (%s) lost: %s", gpu.index, gpu.uuid, exc)
            return [self._sample(gpu, now_ns, "gpu.up", 0.0, "1")]
        out.append(self._sample(gpu, now_ns, "gpu.up", 1.0, "1"))
        for (uuid, fld), count in self.unsupported.items():
            if uuid == gpu.uuid:
                out.append(
                    self._sample(
                        gpu,
                        now_ns,
                        "strata.collector.unsupported",
                        float(count),
                        "{field}",
                        {"collector": self.name, "field": fld},
                    )
                )
        return out

    def _fields(self, gpu: _GPU) -> Iterator[tuple[str, float, str, dict[str, str] | None]]:
        """Yield (name, value, unit, extra labels) for each field the GPU supports."""
        nv, h = self._nvml, gpu.handle
        read = self._reader(gpu)
        if (
            v := read("temperature", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
        ) is not None:
            yield "DCGM_FI_DEV_GPU_TEMP", float(v), "Cel", None
        yield from self._fans(gpu, read)
        if (mw := read("power_usage", nv.nvmlDeviceGetPowerUsage, h)) is not None:
            yield "DCGM_FI_DEV_POWER_USAGE", mw / 1000, "W", None
        if (mw := read("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit, h)) is not None:
            yield "DCGM_FI_DEV_ENFORCED_POWER_LIMIT", mw / 1000, "W", None
        if (mj := read("energy", nv.nvmlDeviceGetTotalEnergyConsumption, h)) is not None:
            yield "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", float(mj), "mJ", None
        if (util := read("utilization", nv.nvmlDeviceGetUtilizationRates, h)) is not None:
            yield "DCGM_FI_DEV_GPU_UTIL", float(util.gpu), "%", None
            yield "DCGM_FI_DEV_MEM_COPY_UTIL", float(util.memory), "%", None
        if (mem := read("memory", nv.nvmlDeviceGetMemoryInfo, h)) is not None:
            yield "DCGM_FI_DEV_FB_USED", mem.used / _MIB, "MiB", None
            yield "DCGM_FI_DEV_FB_FREE", mem.free / _MIB, "MiB", None
            yield "DCGM_FI_DEV_FB_TOTAL", mem.total / _MIB, "MiB", None
        if (mhz := read("clock_sm", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)) is not None:
            yield "DCGM_FI_DEV_SM_CLOCK", float(mhz), "MHz", None
        if (mhz := read("clock_mem", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)) is not None:
            yield "DCGM_FI_DEV_MEM_CLOCK", float(mhz), "MHz", None
        yield from self._event_reasons(h, read)
        yield from self._ecc(h, read)
        if (rows := read("remapped_rows", nv.nvmlDeviceGetRemappedRows, h)) is not None:
            corr, unc, pending, failure = rows
            yield "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", float(corr), "1", None
            yield "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", float(unc), "1", None
            yield "DCGM_FI_DEV_ROW_REMAP_PENDING", float(bool(pending)), "1", None
            yield "DCGM_FI_DEV_ROW_REMAP_FAILURE", float(bool(failure)), "1", None
        if self.pcie_throughput:
            for label, counter in (
                ("tx", nv.NVML_PCIE_UTIL_TX_BYTES),
                ("rx", nv.NVML_PCIE_UTIL_RX_BYTES),
            ):
                kbs = read(f"pcie_{label}", nv.nvmlDeviceGetPcieThroughput, h, counter)
                if kbs is not None:
                    yield f"gpu.pcie.{label}.throughput", kbs * 1024.0, "By/s", None

    def _fans(
        self, gpu: _GPU, read: _Reader
    ) -> Iterator[tuple[str, float, str, dict[str, str] | None]]:
        nv, h = self._nvml, gpu.handle
        count = read("fan_count", nv.nvmlDeviceGetNumFans, h)
        if count is None:
            return  # passively cooled (or unknown): absent, never 0
        for fan in range(int(count)):
            speed = read(f"fan_speed_{fan}", nv.nvmlDeviceGetFanSpeed_v2, h, fan)
            if speed is not None:
                yield "DCGM_FI_DEV_FAN_SPEED", float(speed), "%", {"fan": str(fan)}

    def _event_reasons(
        self, h: Any, read: _Reader
    ) -> Iterator[tuple[str, float, str, dict[str, str] | None]]:
        nv = self._nvml
        getter = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
            nv.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        mask = read("clock_event_reasons", getter, h)
        if mask is None:
            return
        mask = int(mask)
        yield "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", float(mask), "1", None
        for bit, name in THROTTLE_REASONS:
            yield name, float(bool(mask & bit)), "1", None
        yield "gpu.throttle.thermal", float(bool(mask & _THERMAL_BITS)), "1", None
        yield "gpu.throttle.power", float(bool(mask & _POWER_BITS)), "1", None

    def _ecc(
        self, h: Any, read: _Reader
    ) -> Iterator[tuple[str, float, str, dict[str, str] | None]]:
        nv = self._nvml
        for name, err, counter in (
            (
                "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                nv.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                nv.NVML_VOLATILE_ECC,
            ),
            (
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                nv.NVML_VOLATILE_ECC,
            ),
            (
                "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
                nv.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                nv.NVML_AGGREGATE_ECC,
            ),
            (
                "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
                nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                nv.NVML_AGGREGATE_ECC,
            ),
        ):
            count = read("ecc", nv.nvmlDeviceGetTotalEccErrors, h, err, counter)
            if count is None:
                return  # ECC off or unsupported: the other ECC counters will say the same
            yield name, float(count), "1", None

    def _read_xids(self, now_ns: int) -> list[Sample]:
        """Drain pending Xid events without blocking (wait 0 ms)."""
        nv = self._nvml
        by_uuid = {g.uuid: g for g in self._gpus}
        out: list[Sample] = []
        for _ in range(_MAX_XID_PER_PASS):
            try:
                data = self._call(nv.nvmlEventSetWait, self._event_set, 0)
            except nv.NVMLError as exc:
                if exc.value != nv.NVML_ERROR_TIMEOUT:
                    logger.warning("nvml: reading Xid events failed: %s", type(exc).__name__)
                break
            except _DeviceLost:
                break
            try:  # handles are ctypes pointers: compare GPUs by UUID, not by handle
                gpu = by_uuid.get(_text(self._call(nv.nvmlDeviceGetUUID, data.device)))
            except (nv.NVMLError, _DeviceLost):
                gpu = None
            if gpu is None:
                continue
            out.append(
                self._sample(gpu, now_ns, "DCGM_FI_DEV_XID_ERRORS", float(data.eventData), "1")
            )
        return out

    # -- plumbing --------------------------------------------------------------------------

    def _reader(self, gpu: _GPU) -> _Reader:
        nv = self._nvml
        lost_codes = {
            nv.NVML_ERROR_GPU_IS_LOST,
            nv.NVML_ERROR_UNINITIALIZED,
            nv.NVML_ERROR_DRIVER_NOT_LOADED,
            nv.NVML_ERROR_RESET_REQUIRED,
            nv.NVML_ERROR_UNKNOWN,
        }

        def read(fld: str, fn: Callable[..., T], *args: Any) -> T | None:
            try:
                return self._call(fn, *args)
            except nv.NVMLError as exc:
                if exc.value in lost_codes:
                    raise _DeviceLost(type(exc).__name__) from exc
                self._count_unsupported(gpu, fld)
                return None

        return read

    def _count_unsupported(self, gpu: _GPU, fld: str) -> None:
        key = (gpu.uuid, fld)
        self.unsupported[key] = self.unsupported.get(key, 0) + 1

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one NVML call in the worker, bounded by ``call_timeout_s``.

        A call that times out leaves its worker thread stuck inside the driver; the executor
        is replaced so later calls do not queue behind it.
        """
        future = self._executor.submit(fn, *args)
        try:
            return future.result(timeout=self.call_timeout_s)
        except FutureTimeout:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            name = getattr(fn, "__name__", "nvml call")
            msg = f"{name} did not return within {self.call_timeout_s}s"
            raise _DeviceLost(msg) from None

    def _try(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._call(fn, *args)
        except (self._nvml.NVMLError, _DeviceLost, OSError) as exc:
            logger.debug("nvml: %s failed: %s", getattr(fn, "__name__", fn), exc)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-nvml")

    def _sample(
        self,
        gpu: _GPU,
        now_ns: int,
        name: str,
        value: float,
        unit: str,
        extra: dict[str, str] | None = None,
    ) -> Sample:
        attrs = gpu.attributes if extra is None else {**gpu.attributes, **extra}
        return Sample(
            name=name,
            value=value,
            unit=unit,
            layer=Layer.INFRASTRUCTURE,
            time_unix_nano=now_ns,
            attributes=attrs,
            canonical=_canonical(name),
            host=self.host,
            device=gpu.uuid,
        )


_Reader = Callable[..., Any]


_CANONICAL_CACHE: dict[str, str] = {}


def _canonical(name: str) -> str:
    try:
        return _CANONICAL_CACHE[name]
    except KeyError:
        info = classify_metric(name)
        canonical = info.canonical if info and info.canonical else name
        _CANONICAL_CACHE[name] = canonical
        return canonical


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
