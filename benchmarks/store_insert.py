"""The store's cost per span as the spans table grows: the writer's commits, their stalls,
and a trace lookup at the end.

Commits of 8 requests of 512 spans (the ingest benchmark's realistic GenAI batches, decoded
to the store's Arrow columns once, each commit with fresh trace ids and later times) go
through ``DuckDBStore.write_batch`` until ``--spans``. Layouts, each on a new file:

- ``v3``: schema v3's ART index on ``spans(trace_id)`` and DuckDB's default 16 MiB
  checkpoint threshold;
- ``v4@N``: no index (lookups filter on ``trace_key``), checkpoint threshold N MiB (the
  store's is ``db.CHECKPOINT_THRESHOLD_BYTES``).

    .venv/bin/python benchmarks/store_insert.py --spans 2000000 --layouts v3 v4@16 v4@256
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from strata.agent.ingest.decoding import decode_traces  # noqa: E402
from strata.agent.ingest.normalize import IngestPolicy  # noqa: E402
from strata.agent.store import db  # noqa: E402
from strata.agent.store.spans import trace_spans  # noqa: E402

from benchmarks.ingest import SPANS_PER_BATCH, realistic_batch  # noqa: E402

REQUESTS_PER_COMMIT = 8
SPAN_PERIOD_NS = 400_000_000  # each request's spans start 0.4 s after the last's


def request_tables(count: int) -> list[pa.Table]:
    rng = random.Random(7)
    policy = IngestPolicy(salt="bench")
    return [decode_traces(gzip.decompress(realistic_batch(rng, 1_700_000_000 * 10**9)), "",
                          as_json=False, policy=policy, limit=1 << 30, price=None).span_table
            for _ in range(count)]


def fresh(table: pa.Table, shift_ns: int) -> pa.Table:
    """*table* with new random trace ids and its times moved by *shift_ns*."""
    ids = pa.array([os.urandom(16).hex() for _ in range(table.num_rows)])
    table = table.set_column(table.schema.get_field_index("trace_id"), "trace_id", ids)
    index = table.schema.get_field_index("start_ns")
    return table.set_column(index, "start_ns", pc.add(table["start_ns"], shift_ns))


def run(layout: str, spans: int, tables: list[pa.Table], workdir: Path) -> dict[str, object]:
    mib = 16 if layout == "v3" else int(layout.partition("@")[2])
    db.CHECKPOINT_THRESHOLD_BYTES = mib * 2**20
    store = db.DuckDBStore(workdir / f"{layout}.duckdb")
    if layout == "v3":
        store.cursor().execute("CREATE INDEX spans_trace_id ON spans (trace_id)")
    commits = spans // (REQUESTS_PER_COMMIT * SPANS_PER_BATCH)
    times, lookups, sample_ids = [], [], []
    for i in range(commits):
        batch = [fresh(tables[(i * REQUESTS_PER_COMMIT + j) % len(tables)],
                       (i * REQUESTS_PER_COMMIT + j) * SPAN_PERIOD_NS)
                 for j in range(REQUESTS_PER_COMMIT)]
        sample_ids.append(batch[0]["trace_id"][0].as_py())
        started = time.perf_counter()
        store.write_batch(span_tables=batch)
        times.append(time.perf_counter() - started)
        if (i + 1) % 100 == 0:
            print(f"  {layout}: {(i + 1) * REQUESTS_PER_COMMIT * SPANS_PER_BATCH:,} spans",
                  file=sys.stderr, flush=True)
    cur = store.cursor()
    for trace_id in random.Random(1).sample(sample_ids, min(40, len(sample_ids))):
        started = time.perf_counter()
        assert trace_spans(cur, trace_id), trace_id
        lookups.append(time.perf_counter() - started)
    store.close()
    stored = commits * REQUESTS_PER_COMMIT * SPANS_PER_BATCH
    quartile = len(times) // 4
    return {
        "layout": layout,
        "spans": stored,
        "us_per_span": round(sum(times) / stored * 1e6, 1),
        "us_per_span_first_quarter": round(
            sum(times[:quartile]) / (quartile * REQUESTS_PER_COMMIT * SPANS_PER_BATCH) * 1e6, 1),
        "us_per_span_last_quarter": round(
            sum(times[-quartile:]) / (quartile * REQUESTS_PER_COMMIT * SPANS_PER_BATCH) * 1e6, 1),
        "commit_p50_ms": round(statistics.median(times) * 1e3, 1),
        "commit_p99_ms": round(statistics.quantiles(times, n=100, method="inclusive")[98] * 1e3, 1),
        "commit_max_ms": round(max(times) * 1e3, 1),
        "commits_over_150ms": sum(t > 0.15 for t in times),
        "lookup_p50_ms": round(statistics.median(lookups) * 1e3, 1),
        "lookup_p95_ms": round(
            statistics.quantiles(lookups, n=20, method="inclusive")[18] * 1e3, 1),
        "file_mib": round((workdir / f"{layout}.duckdb").stat().st_size / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--layouts", nargs="+",
                        default=["v3", "v4@16", f"v4@{db.CHECKPOINT_THRESHOLD_BYTES >> 20}"])
    args = parser.parse_args()
    tables = request_tables(16)
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        for layout in args.layouts:
            print(json.dumps(run(layout, args.spans, tables, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
