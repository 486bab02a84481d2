"""DuckDB's memory limit: configured, or a share of the container's cgroup limit (D3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from strata.agent.config import load
from strata.agent.errors import ConfigError
from strata.agent.model import SpanRecord
from strata.agent.store.db import DuckDBStore
from strata.agent.store.memory import container_limit_bytes, duckdb_limit_bytes

from tests.agent.store.rows import span

MIB = 1024**2


@pytest.mark.parametrize(("files", "expected"), [
    ({"memory.max": "536870912\n"}, 512 * MIB),  # cgroup v2
    ({"memory.max": "max\n"}, None),
    ({"memory/memory.limit_in_bytes": "268435456\n"}, 256 * MIB),  # cgroup v1
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # v1 "unlimited"
    ({}, None),  # no cgroup filesystem
])
def test_container_limit_read_from_cgroup(tmp_path: Path, files: dict[str, str],
                                          expected: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container_limit_bytes(tmp_path) == expected


def test_duckdb_gets_a_share_of_the_container_or_what_was_configured() -> None:
    assert duckdb_limit_bytes(None, None) == 512 * MIB
    assert duckdb_limit_bytes(None, 512 * MIB) == int(512 * MIB * 0.3)
    assert duckdb_limit_bytes(None, 100 * MIB) == 64 * MIB  # floor
    assert duckdb_limit_bytes(300 * MIB, 512 * MIB) == 300 * MIB


def test_memory_limit_setting() -> None:
    assert load(environ={"STRATA_MEMORY_LIMIT": "256MiB"}).memory_limit_bytes == 256 * MIB
    assert load(environ={"STRATA_MEMORY_LIMIT": "auto"}).memory_limit_bytes is None
    with pytest.raises(ConfigError, match="STRATA_MEMORY_LIMIT"):
        load(environ={"STRATA_MEMORY_LIMIT": "lots"})


def test_store_opens_with_the_limit(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb", memory_limit_bytes=200 * MIB)
    with store._con.cursor() as cur:  # the setting is not exposed otherwise
        setting = cur.execute("SELECT current_setting('memory_limit')").fetchone()
    store.close()
    assert setting is not None
    assert setting[0] in ("200.0 MiB", "209.7 MB"), setting


def _wide_spans(batch: int, count: int) -> list[SpanRecord]:
    """*count* spans of ~1 KiB each (random attribute text)."""
    return [span(os.urandom(8).hex(), batch * count + i, batch * count + i + 1,
                 trace=os.urandom(16).hex(), attributes={"note": os.urandom(480).hex()})
            for i in range(count)]


def test_rows_not_yet_checkpointed_spill_past_the_limit(tmp_path: Path) -> None:
    """DuckDB keeps the rows it has not checkpointed in memory (~1.1 MiB of RSS per MiB of
    WAL); the memory limit bounds them and the rest spill to its temp directory, which is
    what docs/operations.md tells operators to size the agent by."""
    store = DuckDBStore(tmp_path / "s.duckdb", memory_limit_bytes=64 * MIB)
    for batch in range(12):  # ~130 MiB of WAL: past the limit, short of the checkpoint
        store.write_batch(_wide_spans(batch, 10_000))
    with store._con.cursor() as cur:
        held = cur.execute("SELECT memory_usage_bytes, temporary_storage_bytes "
                           "FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'").fetchone()
        stored = cur.execute("SELECT count(*) FROM spans").fetchone()
    wal_mib = (tmp_path / "s.duckdb.wal").stat().st_size / MIB
    store.close()
    assert stored == (120_000,)
    assert wal_mib > 100, wal_mib  # not checkpointed: the rows are still DuckDB's to hold
    assert held is not None
    in_memory, spilled = held
    assert in_memory <= 64 * MIB, in_memory / MIB
    assert spilled > 0
