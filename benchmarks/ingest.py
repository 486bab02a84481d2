"""OTLP/HTTP ingest benchmark: committed-and-queryable spans/s, request latency, agent RSS.

Starts a real `strata agent` on a temporary DuckDB, then a separate load process posts
gzip'd protobuf batches of realistic GenAI spans over a few keep-alive connections for a
fixed time. Reports acked spans/s, p50/p99 request latency, the agent's peak RSS (and peak
PSS, sampled every 0.25 s: with decode workers, the pages they share with the agent are
counted once), and checks that every acked span is queryable through the API afterwards.
With ``--phoenix`` it sends the same payloads to Arize Phoenix (its default SQLite store) as
the peer.

Every request carries new trace ids (the agent stores a resent span once, so cycling a few
payloads would measure deduplication, not ingest), and each payload's spans start a little
after the previous one's, as live traffic does.

    .venv/bin/python benchmarks/ingest.py --seconds 30 --connections 4
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
)

from tests.otlp_factory import key_values, make_span, trace_request  # noqa: E402

SPANS_PER_BATCH = 512
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "llama-3.1-70b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def realistic_batch(rng: random.Random, start_ns: int) -> bytes:
    """512 spans as ~170 RAG traces: workflow root, retrieval, and an LLM call with content,
    starting within 2 s after *start_ns*.

    The LLM span carries a 2 KiB prompt and a 512 B completion (redacted at ingest unless
    content capture is on), token counts and models; the others ~10 short attributes.
    """
    spans = []
    while len(spans) < SPANS_PER_BATCH:
        trace_id, root_id = os.urandom(16), os.urandom(8)
        t0 = start_ns + rng.randrange(0, 2_000_000_000)
        model = rng.choice(MODELS)
        common = {f"app.attr{i}": "v" * 40 for i in range(6)}
        spans.append(make_span(trace_id=trace_id, span_id=root_id, name="invoke_workflow rag",
                               start_ns=t0, duration_ns=1_800_000_000, attributes={
                                   **common, "gen_ai.operation.name": "invoke_workflow",
                                   "user.id": f"u{rng.randrange(1000)}"}))
        spans.append(make_span(trace_id=trace_id, parent_span_id=root_id, name="retrieval docs",
                               start_ns=t0 + 10_000_000, duration_ns=60_000_000, attributes={
                                   **common, "gen_ai.operation.name": "retrieval",
                                   "db.system.name": "milvus", "db.collection.name": "docs"}))
        spans.append(make_span(trace_id=trace_id, parent_span_id=root_id, name=f"chat {model}",
                               start_ns=t0 + 80_000_000,
                               duration_ns=rng.randrange(300, 1700) * 1_000_000,
                               attributes={
                                   "gen_ai.operation.name": "chat",
                                   "gen_ai.provider.name": "openai",
                                   "gen_ai.request.model": model, "gen_ai.response.model": model,
                                   "gen_ai.usage.input_tokens": rng.randrange(200, 3000),
                                   "gen_ai.usage.output_tokens": rng.randrange(20, 600),
                                   "gen_ai.response.finish_reasons": "stop",
                                   "server.address": "api.openai.com",
                                   "gen_ai.input.messages": "Q" * 2048,
                                   "gen_ai.output.messages": "A" * 512}))
    resource = {"service.name": f"svc-{rng.randrange(8)}", "service.version": "1.0.0",
                "team": rng.choice(["search", "support"]), "host.name": "node-1"}
    return gzip.compress(trace_request(spans[:SPANS_PER_BATCH], resource).SerializeToString(), 5)


DCGM_GAUGES = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE",
               "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_COPY_UTIL",
               "vllm:num_requests_running", "vllm:gpu_cache_usage_perc")


def metrics_batch(rng: random.Random, time_ns: int) -> bytes:
    """512 gauge points (8 hosts x 8 GPUs x 8 DCGM/vLLM metrics) with their usual labels, as
    a DCGM exporter scraped by a Collector pushes them."""
    request = ExportMetricsServiceRequest()
    for host in range(8):
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(key_values({"service.name": "dcgm-exporter",
                                                  "host.name": f"node-{host}"}))
        scope = rm.scope_metrics.add()
        for name in DCGM_GAUGES:
            metric = scope.metrics.add(name=name)
            for gpu in range(8):
                metric.gauge.data_points.add(
                    time_unix_nano=time_ns, as_double=rng.uniform(0, 100),
                    attributes=key_values({"gpu": str(gpu), "UUID": f"GPU-{host}-{gpu}",
                                           "Hostname": f"node-{host}",
                                           "modelName": "NVIDIA H100 80GB HBM3"}))
    return gzip.compress(request.SerializeToString(), 5)


def load_process(url: str, bodies: list[bytes], seconds: float, connections: int,
                 out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Post each body once, in order, over *connections* keep-alive clients until the deadline
    (or the bodies run out); report acks/latencies."""
    deadline = time.monotonic() + seconds
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        local: list[tuple[int, float]] = []
        with httpx.Client(timeout=60) as client:
            i = index
            while time.monotonic() < deadline and i < len(bodies):
                started = time.perf_counter()
                reply = client.post(url, content=bodies[i % len(bodies)], headers=headers)
                local.append((reply.status_code, time.perf_counter() - started))
                i += connections
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of *pid* and its child processes (decode workers) in
    MiB; the peak is the sum of each process's own peak (an upper bound)."""
    current = peak = 0.0
    for proc in (pid, *children(pid)):
        fields = {}
        for line in Path(f"/proc/{proc}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        current += int(fields["VmRSS"].split()[0]) / 1024
        peak += int(fields["VmHWM"].split()[0]) / 1024
    return current, peak


def pss_mib(pid: int) -> float:
    """Proportional set size of *pid* and its child processes in MiB: the pages they share
    (a decode worker maps the same libraries as the agent) are split between them, where the
    sum of their RSS counts them in each."""
    total = 0
    for proc in (pid, *children(pid)):
        for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by *pid* and its live child processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in (pid, *children(pid)):
        fields = Path(f"/proc/{proc}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *children(int(child))]
    return found


def run_load(url: str, bodies: list[bytes], seconds: float, connections: int,
             server_pid: int) -> dict:
    """The load from a separate process; also the CPU time the server (with its worker
    processes) spent, per acked span: a figure that load from other processes on the machine
    disturbs much less than spans/s."""
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    proc = mp.Process(target=load_process, args=(url, bodies, seconds, connections, queue))
    cpu_before = cpu_s(server_pid)
    peak_pss = [0.0]
    done = threading.Event()

    def sample_pss() -> None:
        while not done.wait(0.25):
            # a process that exits between listing and reading skips one sample
            with contextlib.suppress(OSError):
                peak_pss[0] = max(peak_pss[0], pss_mib(server_pid))

    sampler = threading.Thread(target=sample_pss, daemon=True)
    started = time.monotonic()
    proc.start()
    sampler.start()
    results = queue.get()
    proc.join()
    done.set()
    sampler.join()
    result = summarize(results, time.monotonic() - started, len(bodies))
    result["peak_pss_mib"] = peak_pss[0]
    spent = cpu_s(server_pid) - cpu_before
    result["server_cpu_s"] = spent
    result["server_cpu_us_per_span"] = spent / max(result["acked_spans"], 1) * 1e6
    return result


def bench_strata(bodies: list[bytes], seconds: float, connections: int, workdir: Path,
                 memory_limit: str | None = None, decode_workers: int = 0,
                 signal: str = "traces") -> dict:
    otlp, api = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    if memory_limit:
        env["STRATA_MEMORY_LIMIT"] = memory_limit
    env["STRATA_DECODE_WORKERS"] = str(decode_workers)
    agent = subprocess.Popen(
        [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(workdir / "bench.duckdb"),
         "--otlp-port", str(otlp), "--api-port", str(api), "--otlp-grpc-port", "0",
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{api}/api/v1/health")
        warm = httpx.post(f"http://127.0.0.1:{otlp}/v1/{signal}", content=bodies[-1], timeout=60,
                          headers={"Content-Type": "application/x-protobuf",
                                   "Content-Encoding": "gzip"})  # starts the decode workers
        assert warm.status_code == 200, warm.status_code
        # the warm-up body is not sent again: a resent body is stored once (same span ids)
        result = run_load(f"http://127.0.0.1:{otlp}/v1/{signal}", bodies[:-1], seconds,
                          connections, agent.pid)
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(agent.pid)
        counts = httpx.get(f"http://127.0.0.1:{api}/api/v1/health").json()["counts"]
        stored = counts["spans" if signal == "traces" else "samples"]
        result["queryable_spans"] = stored
        result["all_acked_queryable"] = stored >= result["acked_spans"] + SPANS_PER_BATCH
        result["decode_workers"] = decode_workers
        return result
    finally:
        agent.terminate()
        agent.wait(30)


# -- OTLP/gRPC beside HTTP (--grpc) ----------------------------------------------------------


def grpc_load_process(target: str, bodies: list[bytes], seconds: float, connections: int,
                      out: mp.Queue) -> None:  # type: ignore[type-arg]
    """load_process over OTLP/gRPC: one channel per connection, gzip as the Collector's
    default, raw request bytes (the SDKs' serialisation is not what is measured)."""
    import grpc

    deadline = time.monotonic() + seconds
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    def worker(index: int) -> None:
        local: list[tuple[int, float]] = []
        with grpc.insecure_channel(target, compression=grpc.Compression.Gzip) as channel:
            export = channel.unary_unary(method)
            i = index
            while time.monotonic() < deadline and i < len(bodies):
                started = time.perf_counter()
                try:
                    export(bodies[i], timeout=60)
                    status = 200
                except grpc.RpcError as exc:
                    status = exc.code().value[0]  # type: ignore[attr-defined]
                local.append((status, time.perf_counter() - started))
                i += connections
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)


def bench_grpc(bodies: list[bytes], seconds: float, connections: int, workdir: Path) -> dict:
    """The same payloads (decompressed; gRPC gzips them itself) to a fresh agent over gRPC."""
    otlp, api, grpc_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    agent = subprocess.Popen(
        [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(workdir / "grpc.duckdb"),
         "--otlp-port", str(otlp), "--api-port", str(api), "--otlp-grpc-port", str(grpc_port),
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{api}/api/v1/health")
        raw = [gzip.decompress(b) for b in bodies]
        queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        proc = mp.Process(target=grpc_load_process,
                          args=(f"127.0.0.1:{grpc_port}", raw, seconds, connections, queue))
        started = time.monotonic()
        proc.start()
        results = queue.get()
        proc.join()
        result = summarize(results, time.monotonic() - started, len(bodies))
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(agent.pid)
        stored = httpx.get(f"http://127.0.0.1:{api}/api/v1/health").json()["counts"]["spans"]
        result["queryable_spans"] = stored
        result["all_acked_queryable"] = stored >= result["acked_spans"]
        return result
    finally:
        agent.terminate()
        agent.wait(30)


def summarize(results: list[tuple[int, float]], elapsed: float, payloads: int) -> dict:
    ok = [lat for status, lat in results if status == 200]
    latencies = sorted(lat for _, lat in results)
    return {
        "requests": len(results),
        "ran_out_of_payloads": len(results) >= payloads,
        "ok": len(ok),
        "statuses": sorted({s for s, _ in results}),
        "acked_spans": len(ok) * SPANS_PER_BATCH,
        "elapsed_s": elapsed,
        "spans_per_s": len(ok) * SPANS_PER_BATCH / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None,
    }


def wait_ready(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {deadline_s}s")


def bench_phoenix(bodies: list[bytes], seconds: float, connections: int, workdir: Path,
                  phoenix: str) -> dict:
    """The same load against Arize Phoenix (`phoenix serve`, default SQLite store)."""
    port = free_port()
    env = {**os.environ, "PHOENIX_PORT": str(port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_WORKING_DIR": str(workdir / "phoenix"), "PHOENIX_GRPC_PORT": str(free_port()),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    server = subprocess.Popen([phoenix, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", 120)
        result = run_load(f"http://127.0.0.1:{port}/v1/traces", bodies, seconds, connections,
                          server.pid)
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(server.pid)
        # Phoenix acks before inserting; count what became queryable by the end of the run
        # and again after a grace period.
        result["queryable_at_end"] = phoenix_span_count(workdir / "phoenix")
        time.sleep(10)
        result["queryable_after_10s"] = phoenix_span_count(workdir / "phoenix")
        result["queryable_spans_per_s"] = result["queryable_at_end"] / result["elapsed_s"]
        return result
    finally:
        server.terminate()
        server.wait(60)


def phoenix_span_count(workdir: Path) -> int:
    import sqlite3

    db = next(workdir.glob("*.db"), None)
    if db is None:
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        return int(con.execute("SELECT count(*) FROM spans").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40,
                        help="payloads generated per second of load (the most it can send)")
    parser.add_argument("--phoenix", help="path to the `phoenix` executable to run the peer")
    parser.add_argument("--memory-limit", help="the agent's [agent] memory_limit (default: auto)")
    parser.add_argument("--grpc", action="store_true",
                        help="also send the same payloads over OTLP/gRPC to a fresh agent")
    parser.add_argument("--metrics", action="store_true",
                        help="post 512-point metrics batches to /v1/metrics instead of spans "
                             "(the figures named spans are then points)")
    parser.add_argument("--decode-workers", type=int, nargs="+", default=[0],
                        help="[agent] decode_workers; several values run one after another")
    parser.add_argument("--seed", type=int, default=0,
                        help="of the payloads (models, services, sizes, start times)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start_ns = time.time_ns() - 3600 * 10**9
    count = int(args.seconds * args.rate)
    print(f"generating {count} payloads ...", flush=True)
    batch = metrics_batch if args.metrics else realistic_batch
    bodies = [batch(rng, start_ns + k * 10**9 // int(args.rate)) for k in range(count)]
    print(f"payload: {SPANS_PER_BATCH} spans, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} "
          "KiB gzip per request", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = {}
        for workers in args.decode_workers:
            name = f"strata decode_workers={workers}"
            report[name] = bench_strata(bodies, args.seconds, args.connections,
                                        Path(tmp) / name, args.memory_limit, workers,
                                        "metrics" if args.metrics else "traces")
            print(name, json.dumps(report[name], indent=2), flush=True)
        if args.grpc:
            http = report[f"strata decode_workers={args.decode_workers[0]}"]
            report["strata_grpc"] = grpc_ = bench_grpc(bodies, args.seconds, args.connections,
                                                       Path(tmp))
            print(json.dumps(grpc_, indent=2), flush=True)
            print(f"gRPC/HTTP spans/s {grpc_['spans_per_s'] / http['spans_per_s']:.2f}, "
                  f"p99 {grpc_['p99_ms'] / http['p99_ms']:.2f}", flush=True)
        if args.phoenix:
            report["phoenix"] = bench_phoenix(bodies, args.seconds, args.connections, Path(tmp),
                                              args.phoenix)
            print(json.dumps(report["phoenix"], indent=2), flush=True)


if __name__ == "__main__":
    main()
