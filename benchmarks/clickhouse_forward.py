"""The direct ClickHouse forwarder (``[forward.clickhouse]``, issue 20): spans/s of one
sidecar's encoder, of the inserts, and end to end.

The input is what a sidecar's receiver hands the forwarder after a commit: ``Records`` of
``benchmarks/ingest.py``'s realistic 512-span requests (RAG traces, ~10 attributes a span,
an LLM call with token counts; content redacted as by default) decoded by the real OTLP
codec and priced by the real ``IngestPricer``. Decoding and pricing are not timed: the
receiver does them whether or not a forwarder is configured.

Three figures, each the best of ``--rounds`` (the machine may be shared):

- **encode + queue**: ``ClickHouseForwarder.enqueue`` of every request on one thread, as the
  receiver calls it: the ``otel_traces`` rows (``rows.spans_table``), their Arrow IPC
  encoding and the fsync'd append to the disk queue. This is the sidecar's encoder: the
  issue's ">= 50k spans/s from one sidecar encoder". Given in wall time (fsync waits
  included) and per CPU-second of the calling thread (``time.thread_time``: what the
  encoder costs, much less sensitive to other processes on a shared machine).
- **insert**: the sender draining that queue into ClickHouse (chdb, in this process) in
  inserts of ``--batch-rows`` rows, each committed only after ClickHouse acknowledged it.
- **end to end**: the forwarder as it runs in a sidecar, its sender thread started, the
  requests enqueued on the caller's thread; from the first enqueue to the last row
  acknowledged by ClickHouse. On one process both sides share the GIL and, here, chdb's
  insert CPU, so this is below both figures above; a ClickHouse server does the insert
  work in its own process.

    .venv/bin/python benchmarks/clickhouse_forward.py [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from strata.agent.ingest.normalize import IngestPolicy  # noqa: E402
from strata.agent.ingest.otlp_codec import decode_trace_request  # noqa: E402
from strata.agent.store.clickhouse.engine import ChdbEngine  # noqa: E402
from strata.agent.store.clickhouse.rows import spans_table  # noqa: E402
from strata.analytics.attribution import IngestPricer  # noqa: E402
from strata.analytics.pricing import PriceTable  # noqa: E402
from strata.exporters.base import Records  # noqa: E402
from strata.exporters.clickhouse_forward import ClickHouseForwarder  # noqa: E402

from benchmarks.ingest import realistic_batch  # noqa: E402

START_NS = 1_767_225_600_000_000_000


def requests(n: int) -> list[Records]:
    """*n* decoded, priced 512-span requests, as the receiver hands them over."""
    rng = random.Random(7)
    policy = IngestPolicy(salt=b"bench")
    pricer = IngestPricer(PriceTable.packaged(), 1.2, 400.0)
    out = []
    for i in range(n):
        body = gzip.decompress(realistic_batch(rng, START_NS + i * 2_000_000_000))
        spans = decode_trace_request(body, is_json=False, policy=policy).spans
        out.append(Records(spans, [], pricer(spans)))
    return out


class _SharedEngine(ChdbEngine):
    """The benchmark's one chdb engine (chdb holds one data directory per process): a
    forwarder's shutdown leaves it open; ``ChdbEngine.close`` closes it at the end."""

    def close(self) -> None:
        pass


def _forwarder(directory: Path, engine: ChdbEngine, batch_rows: int, *,
               start: bool) -> ClickHouseForwarder:
    return ClickHouseForwarder("chdb:unused", directory, batch_rows=batch_rows,
                               max_delay_s=0.2, connect=lambda: engine, start=start)


def one_round(directory: Path, engine: ChdbEngine, items: list[Records],
              batch_rows: int) -> dict[str, float]:
    spans = sum(len(r.spans) for r in items)
    cpu = time.thread_time()
    for records in items:
        spans_table(records.spans, records.costs)
    rows_cpu_s = time.thread_time() - cpu

    forwarder = _forwarder(directory / "staged", engine, batch_rows, start=False)
    started, cpu = time.perf_counter(), time.thread_time()
    for records in items:
        assert forwarder.enqueue(records)
    enqueue_s, enqueue_cpu_s = time.perf_counter() - started, time.thread_time() - cpu
    queued_mib = forwarder.queue_bytes / 1024**2
    started = time.perf_counter()
    while forwarder.send_once(flush=True) is not None:
        pass
    insert_s = time.perf_counter() - started
    assert forwarder.stats.sent_rows == spans, forwarder.stats
    forwarder.shutdown()

    forwarder = _forwarder(directory / "live", engine, batch_rows, start=True)
    started = time.perf_counter()
    for records in items:
        assert forwarder.enqueue(records)
    while forwarder.stats.sent_rows < spans:
        time.sleep(0.005)
    end_to_end_s = time.perf_counter() - started
    forwarder.shutdown()
    return {"rows_cpu": spans / rows_cpu_s, "enqueue_cpu": spans / enqueue_cpu_s,
            "enqueue": spans / enqueue_s, "insert": spans / insert_s,
            "end_to_end": spans / end_to_end_s, "queued_bytes_per_span":
            queued_mib * 1024**2 / spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="512-span requests a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args()
    items = requests(args.requests)
    spans = sum(len(r.spans) for r in items)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="strata-chfwd-") as tmp:
        engine = _SharedEngine(Path(tmp) / "ch", "fwd")
        for n in range(args.rounds):
            result = one_round(Path(tmp) / f"round{n}", engine, items, args.batch_rows)
            print(f"round {n}: " + ", ".join(f"{k} {v:,.0f}" for k, v in result.items()),
                  file=sys.stderr)
            best = {k: max(v, best.get(k, 0.0)) for k, v in result.items()}
        ChdbEngine.close(engine)
    print(f"{spans:,} spans a round ({args.requests} requests of 512), best of {args.rounds}:")
    print(f"| rows only (rows.spans_table), per CPU-second of its thread | "
          f"{best['rows_cpu']:,.0f} spans/s |")
    print(f"| encode + queue (enqueue), per CPU-second of its thread | "
          f"{best['enqueue_cpu']:,.0f} spans/s |")
    print(f"| encode + queue (enqueue: rows, Arrow IPC, fsync'd append), wall | "
          f"{best['enqueue']:,.0f} spans/s |")
    print(f"| insert (sender, {args.batch_rows:,}-row inserts into chdb), wall | "
          f"{best['insert']:,.0f} spans/s |")
    print(f"| end to end (sender thread running, until acknowledged), wall | "
          f"{best['end_to_end']:,.0f} spans/s |")
    print(f"| queue on disk | {best['queued_bytes_per_span']:.0f} bytes a span |")


if __name__ == "__main__":
    main()
