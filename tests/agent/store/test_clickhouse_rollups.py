"""The per-minute rollups against the raw rows on a generated fleet (benchmarks/fleet_data.py,
the hub benchmark's generator, at a tiny size): every window read of whole minutes gives the
rows the raw spans and samples give, with many spans a group and minute, written twice (two
parts a minute that the rollups merge at read)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from strata.agent.store.clickhouse.engine import ChdbEngine
from strata.agent.store.clickhouse.reads import ClickHouseReads
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.units import MINUTE_NS

from benchmarks.fleet_data import Fleet, fill

FLEET = Fleet(services=14, nodes=8, gpus=4, spans=20_000, samples=60_000)  # svc-3, -13, node-7
SEP = "\x1f"


@pytest.fixture(name="reads", scope="module")
def reads_fixture(tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[ClickHouseReads, ClickHouseReads]]:
    store = ClickHouseStore(ChdbEngine(Path(tmp_path_factory.mktemp("fleet")) / "ch"))
    fill(store.engine, FLEET)
    fill(store.engine, FLEET)
    yield ClickHouseReads(store.engine), ClickHouseReads(store.engine, rollups=False)
    store.close()


def _rows(cols: dict[str, Any]) -> list[tuple[Any, ...]]:
    names = list(cols)
    return sorted(zip(*(cols[n].tolist() for n in names), strict=True), key=repr)


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """Equal rows; floats to 1e-12 (the rollups add a bucket's values in another order)."""
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)
            else:
                assert a == b


@pytest.mark.parametrize("bucket_ns", [MINUTE_NS, 5 * MINUTE_NS])
def test_rollup_reads_equal_the_raw_rows(reads: tuple[ClickHouseReads, ClickHouseReads],
                                         bucket_ns: int) -> None:
    rolled, raw = reads
    args = {"start_ns": FLEET.start_ns, "end_ns": FLEET.end_ns, "bucket_ns": bucket_ns,
            "sep": SEP}
    _same(_rows(rolled.span_bucket_stats(**args)), _rows(raw.span_bucket_stats(**args)))
    _same(_rows(rolled.model_bucket_usage(**args)), _rows(raw.model_bucket_usage(**args)))
    for canonicals in (None, ("gpu.temperature", "gpu.clock.sm")):
        _same(_rows(rolled.sample_bucket_stats(**args, canonicals=canonicals)),
              _rows(raw.sample_bucket_stats(**args, canonicals=canonicals)))
    _same(_rows(rolled.clock_reason_fractions(**args, mask=32)),
          _rows(raw.clock_reason_fractions(**args, mask=32)))


def test_thin_entities_and_dependencies_equal_the_raw_rows(
        reads: tuple[ClickHouseReads, ClickHouseReads]) -> None:
    rolled, raw = reads
    window = {"start_ns": FLEET.start_ns, "end_ns": FLEET.end_ns}
    assert rolled.service_dependencies(**window) == raw.service_dependencies(**window)
    assert len(raw.thin_requests(**window, max_requests=100)["service"]) == 0
    assert len(rolled.thin_requests(**window, max_requests=100)["service"]) == 0
    _same(_rows(rolled.thin_requests(**window, max_requests=1_000)),  # every entity thin
          _rows(raw.thin_requests(**window, max_requests=1_000)))
