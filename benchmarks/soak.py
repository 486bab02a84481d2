"""Soak / sustained-ingest run of a real agent (RELIABILITY L1, L2, L6).

Starts `strata agent` on a temporary DuckDB with the local collectors it can run here, five
Prometheus scrape targets (every 15 s) and OTLP forwarding to a local sink, then sends the
plan's "GenAI realistic" mix at a fixed rate for --minutes: 70 % short spans (10 attributes
of 50 B), 25 % LLM spans (gen_ai.* with token counts, an 8 KiB prompt and a 2 KiB
completion), 5 % spans with a 256 KiB attribute; 100-512 spans per gzip'd request. Every span
carries a unique (run_id, batch_index, item_index); every 200 is logged. Each --sample-s it
records the agent's RSS, open fds, threads, CPU time and DB size.

At the end the agent is stopped with SIGTERM and the DuckDB file is read: loss (acked ids not
stored), duplicate (trace_id, span_id) rows, p50/p99 request latency, RSS slope after the
warm-up, fd/thread drift, CPU average, error lines in the log, restarts (0 expected).

    .venv/bin/python benchmarks/soak.py --minutes 30 --rate 2000            # L1
    .venv/bin/python benchmarks/soak.py --minutes 15 --rate 1000 --json     # L2
    .venv/bin/python benchmarks/soak.py --minutes 1440 --rate 500           # L6
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
from google.protobuf import json_format

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port, wait_ready  # noqa: E402
from tests.otlp_factory import make_span, trace_request  # noqa: E402

EXPOSITION = b"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 3\n"


class Sink(BaseHTTPRequestHandler):
    """Scrape target (GET) and forwarding sink (POST) in one."""

    def do_GET(self) -> None:
        self._reply(EXPOSITION, "text/plain; version=0.0.4")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(b"", "application/x-protobuf")

    def _reply(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def genai_mix(rng: random.Random, run_id: str, batch: int, n: int, start_ns: int) -> list:  # type: ignore[type-arg]
    spans = []
    for item in range(n):
        ids = {"test.run_id": run_id, "test.batch_index": batch, "test.item_index": item}
        roll = rng.random()
        if roll < 0.70:
            attrs = {**ids, **{f"app.attr{i}": rng.randbytes(25).hex() for i in range(10)}}
            spans.append(make_span(name="step", start_ns=start_ns, attributes=attrs))
        elif roll < 0.95:
            attrs = {**ids, "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
                     "gen_ai.usage.input_tokens": rng.randrange(200, 3000),
                     "gen_ai.usage.output_tokens": rng.randrange(20, 600),
                     "gen_ai.input.messages": "Q" * 8192, "gen_ai.output.messages": "A" * 2048}
            spans.append(make_span(name="chat gpt-4o", start_ns=start_ns, attributes=attrs))
        else:
            attrs = {**ids, "app.payload": rng.randbytes(128 * 1024).hex()}
            spans.append(make_span(name="big", start_ns=start_ns, attributes=attrs))
    return spans


def proc_sample(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024,
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks}


def slope_per_10min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    denom = sum((x - mx) ** 2 for x in xs)
    if denom == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / denom * 600


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    sink.daemon_threads = True
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    config = work / "strata.toml"
    config.write_text(f'[forward]\nendpoint = "{sink_url}"\n' + "".join(
        f'[[scrape]]\nname = "t{i}"\nurl = "{sink_url}/t{i}"\ninterval = "15s"\n'
        'profile = "vllm"\n' for i in range(5)))
    otlp, api = free_port(), free_port()
    db = work / "soak.duckdb"
    log = work / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_ANALYZE_INTERVAL"] = "60s"
    if args.memory_limit:
        env["STRATA_MEMORY_LIMIT"] = args.memory_limit
    with log.open("wb") as out:
        agent = subprocess.Popen([sys.executable, "-m", "strata.agent.cli", "agent", "--config",
                                  str(config), "--db", str(db), "--otlp-port", str(otlp),
                                  "--api-port", str(api)], stdout=out, stderr=subprocess.STDOUT,
                                 env=env)
    wait_ready(f"http://127.0.0.1:{api}", agent, log, 60)
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:12]
    acked: list[str] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    samples: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    next_sample = started
    batch = 0
    headers = {"Content-Type": "application/json" if args.json else "application/x-protobuf",
               "Content-Encoding": "gzip"}
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            n = rng.randint(100, 512)
            due = started + (len(acked) + n) / args.rate
            spans = genai_mix(rng, run_id, batch, n, time.time_ns())
            request = trace_request(spans, {"service.name": f"soak-{batch % 4}"})
            raw = (json_format.MessageToJson(request).encode() if args.json
                   else request.SerializeToString())
            body = gzip.compress(raw, 5)
            t0 = time.perf_counter()
            try:
                reply = client.post(f"http://127.0.0.1:{otlp}/v1/traces", content=body,
                                    headers=headers)
                code = reply.status_code
            except httpx.TransportError:
                code = 0
            latencies.append(time.perf_counter() - t0)
            statuses[code] = statuses.get(code, 0) + 1
            if code == 200:
                acked += [s.span_id.hex() for s in spans]
            batch += 1
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - started, proc_sample(agent.pid)))
                next_sample = now + args.sample_s
            if due > now:
                time.sleep(due - now)  # pacing to --rate
    elapsed = time.monotonic() - started
    final = proc_sample(agent.pid)
    db_mib = sum(p.stat().st_size for p in work.glob("soak.duckdb*")) / 2**20
    agent.send_signal(signal.SIGTERM)
    exit_code = agent.wait(60)
    sink.shutdown()
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT trace_id, span_id FROM spans").fetchall()
    stored = {r[1] for r in rows}
    warm = [(t, s["rss_mib"]) for t, s in samples if t >= args.warmup_s]
    latencies.sort()
    log_text = log.read_text(errors="replace")
    return {
        "minutes": round(elapsed / 60, 2), "rate_target": args.rate,
        "format": "json" if args.json else "protobuf",
        "requests": sum(statuses.values()), "statuses": statuses,
        "acked_spans": len(acked), "acked_spans_per_s": round(len(acked) / elapsed),
        "missing_acked": len(set(acked) - stored), "duplicate_rows": len(rows) - len(set(rows)),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
        "rss_mib_end": round(final["rss_mib"]), "rss_mib_max": round(max(
            [s["rss_mib"] for _, s in samples] + [final["rss_mib"]])),
        "rss_slope_mib_per_10min_after_warmup": slope_per_10min(warm),
        "fds": [int(min(s["fds"] for _, s in samples)), int(final["fds"])],
        "threads": [int(min(s["threads"] for _, s in samples)), int(final["threads"])],
        "cpu_avg_cores": round(final["cpu_s"] / elapsed, 2),
        "db_mib": round(db_mib, 1),
        "error_lines": sum(1 for line in log_text.splitlines() if " ERROR " in line),
        "tracebacks": log_text.count("Traceback"),
        "exit_code": exit_code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=500.0, help="spans per second")
    parser.add_argument("--memory-limit", help="the agent's [agent] memory_limit (default: auto)")
    parser.add_argument("--json", action="store_true", help="OTLP/JSON instead of protobuf")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
