"""HostCollector: host CPU and memory from /proc (Linux), with OTel ``system.*`` names.

CPU utilisation is a ratio of two reads of ``/proc/stat``, so the first ``collect`` has none
(absent, not 0). Memory comes from ``/proc/meminfo`` (kB there, bytes here).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from strata.agent.errors import CollectError, CollectorUnavailable
from strata.agent.model import Layer, Sample

__all__ = ["HostCollector"]


class HostCollector:
    """Reads ``/proc/stat``, ``/proc/meminfo`` and ``/proc/loadavg``."""

    def __init__(self, *, host: str, proc: Path = Path("/proc")) -> None:
        """Args:
        host: the host name put on every sample.
        proc: the procfs root (tests pass a directory of captured files).
        """
        self.name = "host"
        self.host = host
        self._proc = proc
        self._previous_cpu: tuple[int, int] | None = None  # (busy, total) jiffies

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """Read CPU, memory and load once.

        Raises:
            CollectorUnavailable: no procfs here (not Linux).
            CollectError: procfs unreadable or malformed.
        """
        if not (self._proc / "meminfo").exists():
            raise CollectorUnavailable(self.name, f"no procfs at {self._proc}")
        try:
            stat = (self._proc / "stat").read_text()
            meminfo = (self._proc / "meminfo").read_text()
            loadavg = (self._proc / "loadavg").read_text()
        except OSError as exc:
            raise CollectError(self.name, f"cannot read procfs: {exc}") from exc
        out: list[Sample] = []
        try:
            utilization = self._cpu(stat)
            mem = _meminfo(meminfo)
            total, available = mem["MemTotal"], mem.get("MemAvailable")
            load_1m = float(loadavg.split()[0])
        except (ValueError, IndexError, KeyError) as exc:
            raise CollectError(self.name, f"malformed procfs: {exc!r}") from exc
        if utilization is not None:
            out.append(self._sample("system.cpu.utilization", utilization, "1", now_ns))
        out.append(self._sample("system.memory.limit", float(total), "By", now_ns))
        if available is not None:
            used = total - available
            out.append(self._sample("system.memory.available", float(available), "By", now_ns))
            out.append(self._sample("system.memory.usage", float(used), "By", now_ns))
            out.append(self._sample("system.memory.utilization", used / total, "1", now_ns))
        out.append(self._sample("system.cpu.load_average.1m", load_1m, "1", now_ns))
        return out

    def close(self) -> None:
        """Nothing to release."""

    def _cpu(self, stat: str) -> float | None:
        fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        total = sum(fields[:8])  # guest time is already inside user/nice
        busy = total - idle
        previous, self._previous_cpu = self._previous_cpu, (busy, total)
        if previous is None or total <= previous[1]:
            return None
        return (busy - previous[0]) / (total - previous[1])

    def _sample(self, name: str, value: float, unit: str, now_ns: int) -> Sample:
        return Sample(
            name=name,
            value=value,
            unit=unit,
            layer=Layer.INFRASTRUCTURE,
            time_unix_nano=now_ns,
            attributes={"cpus": str(os.cpu_count() or 0)} if name.startswith("system.cpu") else {},
            canonical=name,
            host=self.host,
            device=self.host,
        )


def _meminfo(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        factor = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
        out[key.strip()] = int(parts[0]) * factor
    return out
