"""NVMLCollector with the pynvml-shaped fake (real pynvml error types), and on a real GPU."""

from __future__ import annotations

import threading

import pynvml
import pytest
from strata.agent.errors import CollectorUnavailable
from strata.agent.model import Layer
from strata.collectors.nvml import NVMLCollector

from tests.fakes.nvml import FakeGPU, FakeNVML

T0 = 1_800_000_000_000_000_000
S = 1_000_000_000
UUID0 = "GPU-7b6d3f0e-8c2a-4a51-9a3e-1f2d3c4b5a69"
UUID1 = "GPU-11111111-2222-3333-4444-555555555555"


def values(samples, uuid: str) -> dict[str, float]:
    out = {}
    for s in samples:
        if s.device == uuid:
            key = s.name if "fan" not in s.attributes else f"{s.name}[{s.attributes['fan']}]"
            if s.name == "strata.collector.unsupported":
                key = f"unsupported:{s.attributes['field']}"
            out[key] = s.value
    return out


@pytest.fixture(name="nvml")
def nvml_fixture() -> FakeNVML:
    return FakeNVML([FakeGPU(UUID0, fan_speeds_pct=[40, 45]), FakeGPU(UUID1)])


class TestReadings:
    def test_one_pass_reads_every_field_with_units_converted_once(self, nvml: FakeNVML) -> None:
        """mW -> W by true division, bytes -> MiB, mJ kept; DCGM names and labels."""
        c = NVMLCollector(nvml=nvml, host="gpu-node-1")
        samples = c.collect(T0)
        v = values(samples, UUID0)
        assert v["DCGM_FI_DEV_GPU_TEMP"] == 58.0
        assert v["DCGM_FI_DEV_POWER_USAGE"] == 412.563
        assert v["DCGM_FI_DEV_ENFORCED_POWER_LIMIT"] == 700.0
        assert v["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == 88_123_456_789.0
        assert v["DCGM_FI_DEV_GPU_UTIL"] == 87.0
        assert v["DCGM_FI_DEV_MEM_COPY_UTIL"] == 41.0
        assert v["DCGM_FI_DEV_FB_USED"] == 73_014_444_032 / 1024**2
        assert v["DCGM_FI_DEV_FB_TOTAL"] == 85_520_809_984 / 1024**2
        assert v["DCGM_FI_DEV_SM_CLOCK"] == 1980.0
        assert v["DCGM_FI_DEV_MEM_CLOCK"] == 2619.0
        assert v["DCGM_FI_DEV_FAN_SPEED[0]"] == 40.0
        assert v["DCGM_FI_DEV_FAN_SPEED[1]"] == 45.0
        assert v["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] == 0.0
        assert v["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] == 0.0
        assert v["gpu.up"] == 1.0
        temp = next(s for s in samples if s.name == "DCGM_FI_DEV_GPU_TEMP" and s.device == UUID0)
        assert temp.attributes == {
            "gpu": "0",
            "UUID": UUID0,
            "modelName": "NVIDIA H100 80GB HBM3",
            "Hostname": "gpu-node-1",
        }
        assert (temp.unit, temp.canonical, temp.layer, temp.host) == (
            "Cel",
            "gpu.temperature",
            Layer.INFRASTRUCTURE,
            "gpu-node-1",
        )
        assert all(s.time_unix_nano == T0 for s in samples)
        c.close()

    def test_passively_cooled_board_has_no_fan_sample(self, nvml: FakeNVML) -> None:
        """NOT_SUPPORTED fans give no sample (absent, never 0) and count as unsupported."""
        c = NVMLCollector(nvml=nvml, host="h")
        v = values(c.collect(T0), UUID1)
        assert not [k for k in v if "FAN" in k]
        assert v["unsupported:fan_count"] == 1.0
        assert v["DCGM_FI_DEV_GPU_TEMP"] == 58.0
        c.close()

    def test_unsupported_fields_are_skipped(self, nvml: FakeNVML) -> None:
        """A board without energy counter, ECC or remapping reports the rest of its fields."""
        gpu = nvml.gpus[1]
        gpu.energy_mj = None
        gpu.ecc = None
        gpu.remapped_rows = None
        c = NVMLCollector(nvml=nvml, host="h")
        v = values(c.collect(T0), UUID1)
        assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" not in v
        assert not [k for k in v if k.startswith("DCGM") and ("ECC" in k or "REMAP" in k)]
        assert v["unsupported:ecc"] == 1.0
        assert v["DCGM_FI_DEV_POWER_USAGE"] == 412.563
        assert v["unsupported:energy"] == 1.0
        c.close()

    def test_throttle_reasons_decoded(self, nvml: FakeNVML) -> None:
        """The clock-event bitmask is kept and decoded: thermal and power-cap flags."""
        nvml.gpus[0].event_reasons = pynvml.nvmlClocksEventReasonHwThermalSlowdown | (
            pynvml.nvmlClocksEventReasonSwPowerCap
        )
        c = NVMLCollector(nvml=nvml, host="h")
        v = values(c.collect(T0), UUID0)
        assert v["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"] == 0x44
        assert v["gpu.throttle.hw_thermal"] == 1.0
        assert v["gpu.throttle.sw_power_cap"] == 1.0
        assert v["gpu.throttle.thermal"] == 1.0
        assert v["gpu.throttle.power"] == 1.0
        assert v["gpu.throttle.hw_slowdown"] == 0.0
        c.close()

    def test_xid_events_drained_without_blocking(self, nvml: FakeNVML) -> None:
        """Pending Xid events become DCGM_FI_DEV_XID_ERRORS samples on the right GPU."""
        c = NVMLCollector(nvml=nvml, host="h")
        c.collect(T0)
        nvml.raise_xid(1, 79)
        nvml.raise_xid(1, 48)
        xids = [s for s in c.collect(T0 + S) if s.name == "DCGM_FI_DEV_XID_ERRORS"]
        assert [(s.device, s.value) for s in xids] == [(UUID1, 79.0), (UUID1, 48.0)]
        assert not [s for s in c.collect(T0 + 2 * S) if s.name == "DCGM_FI_DEV_XID_ERRORS"]
        c.close()
        assert nvml.freed_event_sets == [1]

    def test_pcie_throughput_when_asked(self, nvml: FakeNVML) -> None:
        """PCIe KB/s becomes By/s (x1024) only when pcie_throughput is on."""
        c = NVMLCollector(nvml=nvml, host="h", pcie_throughput=True)
        v = values(c.collect(T0), UUID0)
        assert v["gpu.pcie.tx.throughput"] == 51_234 * 1024.0
        assert v["gpu.pcie.rx.throughput"] == 20_911 * 1024.0
        c.close()


class TestFaults:
    @pytest.mark.parametrize(
        "code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED]
    )
    def test_no_driver_is_unavailable(self, code: int) -> None:
        """No library or driver: CollectorUnavailable naming the real pynvml error class."""
        c = NVMLCollector(nvml=FakeNVML([FakeGPU(UUID0)], init_error=code), host="h")
        with pytest.raises(CollectorUnavailable) as info:
            c.collect(T0)
        assert type(info.value.__cause__) is pynvml.nvmlExceptionClass(code)
        c.close()

    def test_no_gpu_is_unavailable(self) -> None:
        """A driver without GPUs: CollectorUnavailable, and NVML is shut down again."""
        nvml = FakeNVML([])
        c = NVMLCollector(nvml=nvml, host="h")
        with pytest.raises(CollectorUnavailable, match="no GPU"):
            c.collect(T0)
        assert nvml.shutdown_calls == 1
        c.close()

    def test_gpu_lost_mid_run_others_continue_then_reinit(self, nvml: FakeNVML) -> None:
        """GPU lost: up=0 for it, the other still read; re-init with backoff restores it."""
        c = NVMLCollector(nvml=nvml, host="h", reinit_backoff_s=(5.0, 60.0))
        c.collect(T0)
        nvml.gpus[1].lost = True
        lost = c.collect(T0 + S)
        assert values(lost, UUID1) == {"gpu.up": 0.0}
        assert values(lost, UUID0)["DCGM_FI_DEV_GPU_TEMP"] == 58.0
        assert values(c.collect(T0 + 2 * S), UUID1) == {"gpu.up": 0.0}  # backoff: not yet
        assert nvml.init_calls == 1
        c.collect(T0 + 6 * S)  # re-init due at T0+1s+5s; GPU still lost -> next in 10 s
        assert nvml.init_calls == 2
        nvml.gpus[1].lost = False
        assert values(c.collect(T0 + 7 * S), UUID1) == {"gpu.up": 0.0}
        back = values(c.collect(T0 + 16 * S), UUID1)
        assert nvml.init_calls == 3
        assert back["gpu.up"] == 1.0
        assert back["DCGM_FI_DEV_GPU_TEMP"] == 58.0
        c.close()

    def test_hung_call_times_out_and_marks_gpu_down(self, nvml: FakeNVML) -> None:
        """A call that hangs is abandoned after call_timeout_s; the other GPU is still read."""
        c = NVMLCollector(nvml=nvml, host="h", call_timeout_s=0.2)
        c.collect(T0)
        release = threading.Event()
        nvml.gpus[0].hang = release
        try:
            samples = c.collect(T0 + S)
            assert values(samples, UUID0) == {"gpu.up": 0.0}
            assert values(samples, UUID1)["gpu.up"] == 1.0
        finally:
            release.set()
            nvml.gpus[0].hang = None
            c.close()

    def test_close_is_idempotent(self, nvml: FakeNVML) -> None:
        """close() shuts NVML down once, however often it is called."""
        c = NVMLCollector(nvml=nvml, host="h")
        c.collect(T0)
        c.close()
        c.close()
        assert nvml.shutdown_calls == 1


@pytest.mark.gpu
def test_real_gpu_reads_every_device() -> None:
    """On a real GPU: every device reports up=1, temperature, power in W and memory in MiB."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVML here ({type(exc).__name__})")
    count = pynvml.nvmlDeviceGetCount()
    pynvml.nvmlShutdown()
    c = NVMLCollector(host="gpu-host")
    try:
        samples = c.collect(T0)
        second = c.collect(T0 + S)
    finally:
        c.close()
    uuids = {s.device for s in samples if s.name == "gpu.up" and s.value == 1.0}
    assert len(uuids) == count
    for uuid in uuids:
        v = values(samples, uuid)
        assert 0 < v["DCGM_FI_DEV_GPU_TEMP"] < 120
        assert 0 < v["DCGM_FI_DEV_POWER_USAGE"] < 2000  # W, not mW
        assert 0 < v["DCGM_FI_DEV_FB_TOTAL"] < 1024 * 1024  # MiB, not bytes
        assert v["DCGM_FI_DEV_FB_USED"] <= v["DCGM_FI_DEV_FB_TOTAL"]
        assert not [k for k in v if "FAN" in k and v[k] < 0]
        if "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in v:
            later = values(second, uuid)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
            assert later >= v["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
