"""A group commit's wall time while another thread runs Python, by GIL switch interval.

``DuckDBStore.write_batch`` commits two requests of 512 spans (the ingest benchmark's
realistic batches, decoded to the store's Arrow columns once) ``--commits`` times on a new
file; with ``--busy`` a second thread spins in Python the whole time, as the agent's decode
thread or event loop does under load. Each DuckDB or pyarrow call releases the GIL and takes
it back, and every take waits out the busy thread's turn: the commit's time beside a busy
thread, divided by its time alone, counts those waits.

    .venv/bin/python benchmarks/commit_beside_python.py --intervals 0.005 0.0005
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from strata.agent.ingest.decoding import decode_traces  # noqa: E402
from strata.agent.ingest.normalize import IngestPolicy  # noqa: E402
from strata.agent.store.db import DuckDBStore  # noqa: E402

from benchmarks.ingest import realistic_batch  # noqa: E402

REQUESTS_PER_COMMIT = 2


def request_tables(count: int) -> list[pa.Table]:
    rng = random.Random(0)
    start = time.time_ns() - 3600 * 10**9
    policy = IngestPolicy(salt="0" * 32)
    return [decode_traces(realistic_batch(rng, start + k * 25_000_000), "gzip", as_json=False,
                          policy=policy, limit=1 << 30, price=None).span_table
            for k in range(count)]


def commit_ms(tables: list[pa.Table], workdir: Path, *, busy: bool) -> float:
    """Mean wall time of one commit, in ms."""
    store = DuckDBStore(workdir / "commits.duckdb")
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    started = time.perf_counter()
    for i in range(0, len(tables), REQUESTS_PER_COMMIT):
        store.write_batch(span_tables=tables[i:i + REQUESTS_PER_COMMIT])
    elapsed = time.perf_counter() - started
    stop.set()
    if busy:
        spinner.join()
    store.close()
    return elapsed / (len(tables) // REQUESTS_PER_COMMIT) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.005, 0.0005],
                        help="GIL switch intervals (s) to run under")
    args = parser.parse_args()
    tables = request_tables(args.commits * REQUESTS_PER_COMMIT)
    for interval in args.intervals:
        sys.setswitchinterval(interval)
        for busy in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                ms = commit_ms(tables, Path(tmp), busy=busy)
            print(f"switch interval {interval * 1000:g} ms, "
                  f"{'beside a busy thread' if busy else 'alone'}: "
                  f"{ms:.1f} ms per commit of {REQUESTS_PER_COMMIT * 512} spans", flush=True)


if __name__ == "__main__":
    main()
