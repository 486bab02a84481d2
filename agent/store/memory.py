"""How much memory DuckDB may use: ``[agent] memory_limit``, else a share of the container's.

DuckDB's own default is 80 % of physical RAM, and it ignores the container's cgroup limit,
so a sidecar replaying a large WAL after a crash (RELIABILITY D3) could be OOM-killed in a
loop. The limit is set when the file is opened, so the replay already respects it.
"""

from __future__ import annotations

from pathlib import Path

DUCKDB_SHARE = 0.3  # the rest is the Python process: decode, Arrow batches, scorers, API
# Without a container limit. DuckDB fills what it is given: a 5-minute soak peaked at 1.3 GiB
# RSS with 1 GB and 0.6 GiB with 256 MiB.
DEFAULT_LIMIT_BYTES = 512 * 1024**2
MIN_LIMIT_BYTES = 64 * 1024**2
_CGROUP_FILES = ("memory.max", "memory/memory.limit_in_bytes")  # cgroup v2, v1
_UNLIMITED = 1 << 60  # v1 writes "no limit" as a huge page-aligned number


def container_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit of this process's cgroup (v2, else v1), or None when unlimited."""
    for name in _CGROUP_FILES:
        try:
            text = (cgroup_root / name).read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= _UNLIMITED:
            return None
        return int(text)
    return None


def duckdb_limit_bytes(configured: int | None, container: int | None) -> int:
    """*configured* when set; else 30 % of the container limit (at least 64 MiB) or 512 MiB."""
    if configured is not None:
        return configured
    if container is None:
        return DEFAULT_LIMIT_BYTES
    return max(MIN_LIMIT_BYTES, int(container * DUCKDB_SHARE))
