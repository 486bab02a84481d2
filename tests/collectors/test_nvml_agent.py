"""NVML faults through a real agent: samples stored, GPU loss raises an incident (C7)."""

from __future__ import annotations

from pathlib import Path

from strata.agent.config import Settings
from strata.agent.runner import Agent
from strata.collectors.nvml import NVMLCollector

from tests.fakes.nvml import FakeGPU, FakeNVML

T0 = 1_800_000_000_000_000_000
MINUTE = 60_000_000_000
LOST = "GPU-11111111-2222-3333-4444-555555555555"


def run_timeline(tmp_path: Path) -> tuple[Agent, list[float]]:
    nvml = FakeNVML([FakeGPU("GPU-7b6d3f0e-8c2a-4a51-9a3e-1f2d3c4b5a69"), FakeGPU(LOST)])
    collector = NVMLCollector(nvml=nvml, host="gpu-node-1", reinit_backoff_s=(5.0, 60.0))
    agent = Agent(Settings(db=str(tmp_path / "a.duckdb"), gpu_enabled=False,
                           host_enabled=False))
    agent.start()
    ups = []
    for minute in range(90):
        nvml.gpus[1].lost = minute >= 60  # GPU_IS_LOST from the second board after an hour
        samples = collector.collect(T0 + minute * MINUTE)
        ups += [s.value for s in samples if s.name == "gpu.up" and s.device == LOST]
        agent.write_samples(samples)
    collector.close()
    return agent, ups


def test_lost_gpu_raises_an_incident(tmp_path: Path) -> None:
    """C7: a GPU lost mid-run is stored as gpu.up=0 for that GPU (the agent keeps going) and
    analysis opens an infrastructure incident naming it."""
    agent, ups = run_timeline(tmp_path)
    try:
        assert ups[:60] == [1.0] * 60
        assert ups[60:] == [0.0] * 30
        report = agent.analyze_once(full=True)
        lost = [i for i in report.new if i.layer == "infrastructure" and LOST in
                (i.summary + " ".join(e.signal for e in i.evidence) + str(i.host))]
        assert lost, [(i.kind, i.summary) for i in report.new]
        assert lost[0].kind in {"gpu_fault", "gpu_lost"}
    finally:
        agent.close()
