"""Spans held for the GPU pass (``agent/finops/held_spans.py``): how fast a sidecar forwards
them once due, read back from DuckDB, re-checked by the ingest pricer and queued by the real
OTLP forwarder (its sender not started: the upstream's speed is not this step's).

The input is ``benchmarks/ingest.py``'s realistic 512-span requests decoded by the real OTLP
codec, with every LLM call's model renamed to one missing from the price table (a
self-hosted model: ingest cannot price it, so it is held), stored through
``DuckDBStore.write_batch`` as the writer stores a commit.

    .venv/bin/python benchmarks/held_spans.py [--requests 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from strata.agent.finops.held_spans import HeldSpans  # noqa: E402
from strata.agent.ingest.normalize import IngestPolicy  # noqa: E402
from strata.agent.ingest.otlp_codec import decode_trace_request  # noqa: E402
from strata.agent.store.db import DuckDBStore  # noqa: E402
from strata.analytics.attribution import IngestPricer  # noqa: E402
from strata.analytics.pricing import PriceTable  # noqa: E402
from strata.exporters.otlp_forward import OTLPForwarder  # noqa: E402

from benchmarks.ingest import realistic_batch  # noqa: E402

START_NS = 1_767_225_600_000_000_000
SELF_HOSTED = "acme-llm-70b"  # in no price table


def one_round(directory: Path, n_requests: int) -> tuple[int, int, float]:
    """(spans stored, spans forwarded, seconds of ``forward_due``)."""
    rng = random.Random(7)
    policy = IngestPolicy(salt=b"bench")
    pricer = IngestPricer(PriceTable.packaged(), 1.2, 400.0)
    store = DuckDBStore(directory / "agent.duckdb")
    stored = 0
    for i in range(n_requests):
        body = gzip.decompress(realistic_batch(rng, START_NS + i * 10**9))
        spans = [replace(s, request_model=SELF_HOSTED, response_model=SELF_HOSTED)
                 if s.model is not None else s
                 for s in decode_trace_request(body, is_json=False, policy=policy).spans]
        store.write_batch(spans, costs=pricer(spans), received_ns=START_NS + i)
        stored += len(spans)
    forwarder = OTLPForwarder("http://127.0.0.1:9", directory / "queue", start=False)
    held = HeldSpans(store, pricer, hold_ns=0, started_ns=0)
    started = time.perf_counter()
    forwarded = held.forward_due([forwarder], now_ns=START_NS + n_requests)
    elapsed = time.perf_counter() - started
    forwarder.shutdown()
    store.close()
    return stored, forwarded, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="512-span requests stored")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = None
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            stored, forwarded, elapsed = one_round(Path(tmp), args.requests)
        print(f"round {n}: {forwarded:,} of {stored:,} spans held and forwarded in "
              f"{elapsed:.2f} s: {forwarded / elapsed:,.0f} spans/s")
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    print(f"best: {forwarded / best:,.0f} held spans/s forwarded "
          f"({best / forwarded * 1e6:.1f} µs a span)")


if __name__ == "__main__":
    main()
