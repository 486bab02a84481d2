"""HostCollector over a captured /proc tree (tests/fixtures/proc), copied to tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from strata.agent.errors import CollectError, CollectorUnavailable
from strata.agent.model import Layer, Sample
from strata.collectors.host import HostCollector

from tests.collectors.conftest import FIXTURES

NOW = 1_700_000_000_000_000_000
KIB = 1024
MEM_TOTAL = 24683784 * KIB  # MemTotal in the capture, kB there
MEM_AVAILABLE = 23118492 * KIB


@pytest.fixture(name="proc")
def proc_fixture(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "proc", tmp_path / "proc"))


def by_name(samples: list[Sample] | tuple[Sample, ...]) -> dict[str, Sample]:
    named = {s.name: s for s in samples}
    assert len(named) == len(samples), "one sample per name"
    return named


def next_second(proc: Path) -> None:
    (proc / "stat").write_text((proc / "stat.1s_later").read_text())


def test_memory_and_load_on_the_first_read_cpu_on_the_second(proc: Path) -> None:
    """The first collect has no CPU utilisation (it is a ratio of two reads), the second has
    busy/total of the interval: 250 of 1,000 jiffies, guest time not counted twice."""
    collector = HostCollector(host="node-a", proc=proc)
    first = by_name(list(collector.collect(NOW)))
    assert sorted(first) == ["system.cpu.load_average.1m", "system.memory.available",
                             "system.memory.limit", "system.memory.usage",
                             "system.memory.utilization"]
    assert first["system.memory.limit"].value == MEM_TOTAL
    assert first["system.memory.available"].value == MEM_AVAILABLE
    assert first["system.memory.usage"].value == MEM_TOTAL - MEM_AVAILABLE
    assert first["system.memory.utilization"].value == pytest.approx(0.0634138, abs=1e-7)
    assert first["system.cpu.load_average.1m"].value == 11.06
    next_second(proc)
    second = by_name(list(collector.collect(NOW + 10**9)))
    assert second["system.cpu.utilization"].value == pytest.approx(0.25)
    collector.close()


def test_sample_identity(proc: Path) -> None:
    """Infrastructure layer, OTel names as canonical, host and device the given host, units
    in bytes and ratios; CPU samples say how many CPUs the ratio is over."""
    collector = HostCollector(host="node-a", proc=proc)
    collector.collect(NOW)
    next_second(proc)
    samples = by_name(list(collector.collect(NOW)))
    for sample in samples.values():
        assert (sample.layer, sample.canonical) == (Layer.INFRASTRUCTURE, sample.name)
        assert (sample.host, sample.device, sample.time_unix_nano) == ("node-a", "node-a", NOW)
    assert {n: s.unit for n, s in samples.items()} == {
        "system.cpu.utilization": "1", "system.cpu.load_average.1m": "1",
        "system.memory.limit": "By", "system.memory.available": "By",
        "system.memory.usage": "By", "system.memory.utilization": "1"}
    assert samples["system.cpu.utilization"].attributes == {"cpus": str(os.cpu_count() or 0)}
    assert samples["system.memory.limit"].attributes == {}


def test_counters_going_back_give_no_cpu_figure(proc: Path) -> None:
    """A counter reset (the later read's totals lower) yields no utilisation, not a negative
    one; the next read after it has one again."""
    collector = HostCollector(host="h", proc=proc)
    next_second(proc)
    collector.collect(NOW)
    shutil.copy(FIXTURES / "proc" / "stat", proc / "stat")
    assert "system.cpu.utilization" not in by_name(list(collector.collect(NOW)))
    next_second(proc)
    assert by_name(list(collector.collect(NOW)))["system.cpu.utilization"].value == \
        pytest.approx(0.25)


def test_old_kernel_without_memavailable(proc: Path) -> None:
    """Kernels before 3.14 have no MemAvailable: the limit only, no made-up usage."""
    lines = (proc / "meminfo").read_text().splitlines()
    (proc / "meminfo").write_text(
        "\n".join(line for line in lines if not line.startswith("MemAvailable:")) + "\n")
    names = set(by_name(list(HostCollector(host="h", proc=proc).collect(NOW))))
    assert names == {"system.memory.limit", "system.cpu.load_average.1m"}


def test_no_procfs_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(CollectorUnavailable):
        HostCollector(host="h", proc=tmp_path).collect(NOW)


@pytest.mark.parametrize(("file", "text", "reason"), [
    ("stat", None, "cannot read procfs"),
    ("stat", "cpu  12 x 3 4\n", "malformed procfs"),
    ("meminfo", "MemFree: 10 kB\n", "malformed procfs"),
    ("loadavg", "\n", "malformed procfs"),
], ids=["stat-missing", "stat-garbage", "no-memtotal", "loadavg-empty"])
def test_unreadable_or_malformed_procfs_fails_the_collect(
    proc: Path, file: str, text: str | None, reason: str
) -> None:
    if text is None:
        (proc / file).unlink()
    else:
        (proc / file).write_text(text)
    with pytest.raises(CollectError, match=reason):
        HostCollector(host="h", proc=proc).collect(NOW)
