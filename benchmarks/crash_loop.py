"""RELIABILITY D1 at the plan's size: SIGKILL a loaded agent 50 times, some during a checkpoint.

Starts `strata agent` on a temporary DuckDB; senders post 100-span GenAI batches on
keep-alive connections and remember every span id acknowledged with a 200. Each cycle waits
for new acks, then kills the agent with SIGKILL, either at a random moment (0.1-1 s) or,
every --aim-every cycle, aimed at a checkpoint: when the WAL has reached DuckDB's 16 MiB
checkpoint threshold or the database file is being written. The agent is restarted at once;
"ready" is the time from the restart to ``/healthz`` 200. After the last cycle the agent is
stopped with SIGTERM and the file is read: acked ids not stored (loss) and duplicate
(trace_id, span_id) rows.

    .venv/bin/python benchmarks/crash_loop.py --cycles 50 --aim-every 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.otlp_factory import genai_attributes, make_span, trace_request  # noqa: E402

PB = {"Content-Type": "application/x-protobuf"}
CHECKPOINT_WAL_BYTES = 16 * 1024 * 1024  # DuckDB's default checkpoint_threshold


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Senders:
    """Threads posting 100-span batches; every acked span id is kept."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.acked: list[str] = []
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                spans = [make_span(attributes={**genai_attributes(), "app.n": i,
                                               "app.pad": os.urandom(96).hex()})
                         for i in range(100)]
                try:
                    reply = client.post(self.url, headers=PB,
                                        content=trace_request(spans).SerializeToString())
                    status = str(reply.status_code)
                except httpx.TransportError:
                    status = "connection error"
                    time.sleep(0.02)  # the agent is down: retry until it is back
                with self._lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == "200":
                        self.acked += [s.span_id.hex() for s in spans]

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def start_agent(db: Path, otlp: int, api: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env.update({"STRATA_GPU_ENABLED": "false", "STRATA_HOST_ENABLED": "false"})
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db),
             "--otlp-port", str(otlp), "--api-port", str(api)],
            env=env, stdout=out, stderr=subprocess.STDOUT)


def ready_after(api: int, process: subprocess.Popen[bytes], deadline_s: float = 120) -> float:
    """Seconds until ``/healthz`` answers 200 (raises if the agent exits or never does)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited {process.returncode} on restart")
        try:
            if httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"agent not ready in {deadline_s}s")


def wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def aim_at_checkpoint(db: Path, timeout_s: float = 120) -> bool:
    """Wait until a checkpoint is due or running: the WAL at the threshold, or the database
    file changing. False when neither happened within *timeout_s*."""
    wal = db.with_name(db.name + ".wal")

    def stat() -> tuple[int, float]:
        try:
            st = db.stat()
            return st.st_size, st.st_mtime
        except FileNotFoundError:
            return 0, 0.0

    before = stat()

    def due() -> bool:
        try:
            wal_size = wal.stat().st_size
        except FileNotFoundError:
            wal_size = 0
        return wal_size >= CHECKPOINT_WAL_BYTES or stat() != before

    return wait_for(due, timeout_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--aim-every", type=int, default=3,
                        help="every Nth kill waits for a checkpoint (the plan asks >= 10 of 50)")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, log = work / "agent.duckdb", work / "agent.log"
        otlp, api = free_port(), free_port()
        process = start_agent(db, otlp, api, log)
        ready_after(api, process)
        senders = Senders(f"http://127.0.0.1:{otlp}/v1/traces", args.senders)
        ready_s: list[float] = []
        aimed = aimed_hit = 0
        started = time.monotonic()
        for cycle in range(1, args.cycles + 1):
            seen = senders.acked_count()
            if not wait_for(lambda seen=seen: senders.acked_count() > seen, 60):
                raise RuntimeError(f"cycle {cycle}: no new acks in 60 s")
            if cycle % args.aim_every == 0:
                aimed += 1
                aimed_hit += aim_at_checkpoint(db)
            else:
                time.sleep(rng.uniform(0.1, 1.0))
            process.kill()
            process.wait(30)
            process = start_agent(db, otlp, api, log)
            ready_s.append(ready_after(api, process))
            print(f"cycle {cycle}: ready in {ready_s[-1]:.2f} s, {senders.acked_count()} acked",
                  flush=True)
        wait_for(lambda: senders.acked_count() > seen, 60)
        senders.stop()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute("SELECT trace_id, span_id FROM spans").fetchall()
        stored = {span_id for _, span_id in rows}
        log_text = log.read_text(errors="replace")
        report = {
            "cycles": args.cycles,
            "kills_aimed_at_a_checkpoint": aimed,
            "aimed_kills_that_found_one_due_or_running": aimed_hit,
            "minutes": round((time.monotonic() - started) / 60, 1),
            "acked_spans": len(senders.acked),
            "acked_missing": len(set(senders.acked) - stored),
            "stored_spans": len(rows),
            "duplicate_rows": len(rows) - len(set(rows)),
            "db_opened": f"{len(ready_s)}/{args.cycles}",
            "ready_s_p50": round(statistics.median(ready_s), 2),
            "ready_s_max": round(max(ready_s), 2),
            "statuses": senders.statuses,
            "final_sigterm_exit": exit_code,
            "recovered_incidents": log_text.count("store_recovered"),
            "tracebacks_in_log": log_text.count("Traceback"),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
