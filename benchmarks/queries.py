"""Query latency of the FinOps and trace views on a large store (issue 5).

Builds a DuckDB store (real schema, trace keys and rollup) in a temporary directory with
``--spans`` spans (default 10M, 5 per trace, over 8 days) and ``--samples`` samples (default
50M: 128 GPUs x 6 signals, 16 vLLM servers x 4, 8 vector-DB shards x 3, evenly over the same
8 days), generated as Arrow tables with numpy and inserted in time order. Then it measures:

- ``GET /api/v1/cost?group_by=team`` over the last 7 days: through
``strata.agent.finops.report.cost_report``
  (+ ``summarize``) and through the HTTP route of an in-process agent (FastAPI TestClient);
- trace detail with correlation: ``trace_spans`` + ``correlate_trace`` and the HTTP route
  ``GET /api/v1/traces/{id}``, for traces with a GPU-served chat span;
- for reference: the same cost query without the rollup (raw scan), grouped by an attribute,
  and the initial rollup build.

The store is deleted at the end. Run:

    .venv/bin/python -m benchmarks.queries      # --spans 1000000 --samples 5000000 for a quick run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from strata.agent.analysis.layer_reads import correlate_trace
from strata.agent.api import cost, traces
from strata.agent.config import Settings
from strata.agent.finops.report import refresh_cost_rollup, summarize
from strata.agent.runner import Agent
from strata.agent.store.columns import trace_key_sql
from strata.agent.store.costs import cost_report
from strata.agent.store.db import DuckDBStore
from strata.agent.store.seam import DuckDBReports
from strata.agent.store.spans import trace_spans

S = 1_000_000_000
DAY = 86_400 * S
T_START = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
SPAN_DAYS = 8
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
N_HOSTS, GPUS_PER_HOST = 16, 8
N_GPUS = N_HOSTS * GPUS_PER_HOST
N_SHARDS = 8
TEAMS = [f"team-{i}" for i in range(8)]
SERVICES = [f"svc-{i}" for i in range(20)]
HOSTED = [("openai", "gpt-4o", 2.5, 10.0), ("openai", "gpt-4.1-mini", 0.4, 1.6),
          ("anthropic", "claude-sonnet-4-5", 3.0, 15.0), ("openai", "gpt-5-nano", 0.05, 0.4)]


class CorrelatingAgent(Agent):
    """The runner's correlate hook wired as the lead wires it."""

    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return correlate_trace(DuckDBReports(self.store), spans)


def hex_ids(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    out = np.empty((n, nbytes * 2), dtype=np.uint8)
    out[:, 0::2] = HEX[raw >> 4]
    out[:, 1::2] = HEX[raw & 15]
    return pa.array(out.view(f"S{nbytes * 2}").ravel()).cast(pa.string())


def pick(indices: np.ndarray, values: list[Any]) -> pa.Array:
    """values[indices] as a plain Arrow column (None in values gives nulls)."""
    dictionary = pa.array(values)
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), dictionary).cast(
        dictionary.type
    )


def gpu_uuid(g: int) -> str:
    return f"GPU-{g // GPUS_PER_HOST:04x}{g % GPUS_PER_HOST:04x}-bench"


def span_batch(rng: np.random.Generator, first_trace: int, n_traces: int,
               n_total_traces: int) -> pa.Table:
    """5 spans per trace: workflow, retrieval, chat (GPU-served or hosted), tool, small chat."""
    n = n_traces * 5
    slot_ns = SPAN_DAYS * DAY / n_total_traces
    trace_start = T_START + (
        (first_trace + np.sort(rng.random(n_traces)) * n_traces) * slot_ns
    ).astype(np.int64)
    role = np.tile(np.arange(5), n_traces)
    tstart = np.repeat(trace_start, 5)
    offset = np.array([0, 4, 40, 1300, 1600], dtype=np.int64)[role] * 1_000_000
    dur = (np.array([2000, 30, 1200, 250, 300])[role] * rng.lognormal(0, 0.3, n) * 1e6).astype(
        np.int64)
    start = tstart + offset
    svc = np.repeat(rng.integers(0, len(SERVICES), n_traces), 5)
    team = svc % len(TEAMS)
    gpu = np.repeat(rng.integers(0, N_GPUS, n_traces), 5)
    shard = np.repeat(rng.integers(0, N_SHARDS, n_traces), 5)
    on_gpu = np.repeat(rng.random(n_traces) < 0.5, 5) & (role == 2)
    hosted = np.where(role == 4, 3, np.repeat(rng.integers(0, 3, n_traces), 5))
    is_model = (role == 2) | (role == 4)
    tokens_in = rng.integers(200, 3000, n)
    tokens_out = rng.integers(20, 600, n)
    rate_in = np.array([h[2] for h in HOSTED])[hosted]
    rate_out = np.array([h[3] for h in HOSTED])[hosted]
    usd = np.where(on_gpu, dur / S * 2.5 / 3600,
                   (tokens_in * rate_in + tokens_out * rate_out) / 1e6)
    unpriced = rng.random(n) < 0.03
    energy = np.where(on_gpu, dur / S * 0.08, tokens_out * 0.002)
    model_idx = np.where(on_gpu, len(HOSTED), hosted)
    models = [h[1] for h in HOSTED] + ["llama-3.1-8b-instruct"]
    providers = [h[0] for h in HOSTED] + ["vllm"]
    # attribute templates: per GPU (chat on GPU), per shard (retrieval), per user (others)
    users = 64
    gpu_attrs = [f'{{"gen_ai.operation.name":"chat","gpu.uuid":"{gpu_uuid(g)}",'
                 f'"server.address":"vllm-{g // GPUS_PER_HOST}","user.id":"u{g % users}"}}'
                 for g in range(N_GPUS)]
    shard_attrs = [f'{{"gen_ai.operation.name":"retrieval","db.system.name":"milvus",'
                   f'"db.collection.name":"docs","db.shard":"{s}","server.address":'
                   f'"milvus-{s // 2}"}}' for s in range(N_SHARDS)]
    user_attrs = [f'{{"gen_ai.operation.name":"chat","user.id":"u{u}"}}' for u in range(users)]
    plain = ['{"gen_ai.operation.name":"invoke_workflow"}', '{"gen_ai.tool.name":"search"}']
    templates = gpu_attrs + shard_attrs + user_attrs + plain
    attr_idx = np.select(
        [on_gpu, role == 1, is_model, role == 0],
        [gpu, N_GPUS + shard, N_GPUS + N_SHARDS + rng.integers(0, users, n),
         np.full(n, len(templates) - 2)],
        default=len(templates) - 1,
    )
    hosts = [f"gpu-node-{h}" for h in range(N_HOSTS)] + [f"app-{i}" for i in range(20)]
    host_idx = np.where(on_gpu, gpu // GPUS_PER_HOST, N_HOSTS + svc)
    trace_ids = hex_ids(rng, n_traces, 16).take(pa.array(np.repeat(np.arange(n_traces), 5)))
    span_ids = hex_ids(rng, n, 8)
    root_ids = span_ids.take(pa.array(np.repeat(np.arange(n_traces) * 5, 5)))
    parent = pa.array(np.where(role == 0, None, root_ids.to_numpy(zero_copy_only=False)),
                      pa.string())
    layer_idx = np.select([role == 1, is_model & on_gpu, is_model], [2, 1, 0], default=3)
    priced = ~unpriced & (is_model | on_gpu)
    null_f = pa.array(np.where(priced, usd, np.nan), pa.float64(), from_pandas=True)
    return pa.table({
        "trace_id": trace_ids, "span_id": span_ids, "parent_span_id": parent,
        "name": pick(role, ["workflow", "retrieval docs", "chat", "execute_tool", "chat"]),
        "kind": pick((role == 0).astype(int), ["client", "server"]),
        "start_ns": start, "end_ns": start + dur, "duration_ns": dur,
        "status": pick((rng.random(n) < 0.01).astype(int), ["ok", "error"]),
        "service": pick(svc, SERVICES), "service_version": pick(np.zeros(n), ["1.0.0"]),
        "layer": pick(layer_idx, ["model", "serving", "data", "orchestration"]),
        "provider": pick(np.where(is_model, model_idx, len(models)), [*providers, None]),
        "request_model": pick(np.where(is_model, model_idx, len(models)), [*models, None]),
        "response_model": pick(np.where(is_model, model_idx, len(models)), [*models, None]),
        "input_tokens": pa.array(np.where(is_model, tokens_in, 0), mask=~is_model),
        "output_tokens": pa.array(np.where(is_model, tokens_out, 0), mask=~is_model),
        "host": pick(host_idx, hosts), "team": pick(team, TEAMS),
        "cost_usd": null_f,
        "cost_source": pick(np.where(priced, on_gpu.astype(int), 2),
                            ["token_price", "gpu_time", None]),
        "energy_wh": pa.array(energy, mask=~(is_model | on_gpu)),
        "energy_source": pick(np.where(is_model | on_gpu, on_gpu.astype(int), 2),
                              ["estimated", "measured", None]),
        "co2e_g": pa.array(energy * 0.48, mask=~(is_model | on_gpu)),
        "attributes": pick(attr_idx, templates),
        "resource": pick(svc, [f'{{"service.name":"{s}"}}' for s in SERVICES]),
        "received_ns": start + 2 * S,
    })  # fmt: skip


def series_table() -> dict[str, list[Any]]:
    """One row per sample series: name, canonical, layer, unit, host, device, service, labels."""
    rows: list[tuple[Any, ...]] = []
    gpu_signals = [("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", "%"),
                   ("DCGM_FI_DEV_GPU_TEMP", "gpu.temperature", "Cel"),
                   ("DCGM_FI_DEV_POWER_USAGE", "gpu.power.draw", "W"),
                   ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "gpu.energy.consumed", "mJ"),
                   ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gpu.clock_event_reasons", "1"),
                   ("DCGM_FI_DEV_FB_USED", "gpu.memory.used", "MiB")]
    for g in range(N_GPUS):
        host = f"gpu-node-{g // GPUS_PER_HOST}"
        for name, canonical, unit in gpu_signals:
            rows.append((name, canonical, "infrastructure", unit, host, gpu_uuid(g),
                         "dcgm-exporter", f'{{"UUID":"{gpu_uuid(g)}","Hostname":"{host}"}}'))
    for h in range(N_HOSTS):
        for name, canonical, unit in (("vllm:num_requests_waiting", "serving.requests.waiting",
                                       "{request}"),
                                      ("vllm:num_requests_running", "serving.requests.running",
                                       "{request}"),
                                      ("vllm:kv_cache_usage_perc", "serving.kv_cache.usage", "1"),
                                      ("serving.ttft.p95", "serving.ttft.p95", "s")):
            rows.append((name, canonical, "serving", unit, f"gpu-node-{h}", None, f"vllm-{h}",
                         '{"model_name":"llama-3.1-8b-instruct"}'))
    for s in range(N_SHARDS):
        for name, canonical, unit in (("milvus_datacoord_segment_num", "vectordb.segments",
                                       "{segment}"),
                                      ("milvus_proxy_sq_latency", "vectordb.query.latency", "ms"),
                                      ("vectordb.shard.entries_per_segment",
                                       "vectordb.shard.entries_per_segment", "{entry}")):
            rows.append((name, canonical, "data", unit, f"milvus-{s // 2}", None, "milvus",
                         f'{{"collection_name":"docs","shard":"{s}"}}'))
    keys = ("name", "canonical", "layer", "unit", "host", "device", "service", "labels")
    return {k: [r[i] for r in rows] for i, k in enumerate(keys)}


def sample_batch(rng: np.random.Generator, series: dict[str, list[Any]], steps: np.ndarray,
                 interval_ns: int) -> pa.Table:
    k = len(series["name"])
    idx = np.tile(np.arange(k), len(steps))
    phase = (np.arange(k) * (interval_ns // k)).astype(np.int64)
    t = np.repeat(steps, k) + phase[idx]
    is_energy = np.array([c == "gpu.energy.consumed" for c in series["canonical"]])[idx]
    value = np.where(is_energy, (t - T_START) / S * 250.0 * 1000, rng.random(len(t)) * 100)
    columns: dict[str, Any] = {"time_ns": t}
    for key in ("name", "canonical", "layer", "unit"):
        columns[key] = pick(idx, series[key])
    columns["value"] = value
    for key in ("host", "device", "service", "labels"):
        columns[key] = pick(idx, series[key])
    columns["received_ns"] = t + S
    return pa.table(columns)


def insert(store: DuckDBStore, table_name: str, batch: pa.Table) -> None:
    with store.transaction() as cur:
        cur.register("_bench_batch", batch)
        key = f", {trace_key_sql('trace_id')} AS trace_key" if table_name == "spans" else ""
        cur.execute(f"INSERT INTO {table_name} BY NAME SELECT *{key} FROM _bench_batch")  # noqa: S608
        cur.unregister("_bench_batch")


def generate(store: DuckDBStore, n_spans: int, n_samples: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_traces = n_spans // 5
    chunk = 200_000
    series = series_table()
    k = len(series["name"])
    n_steps = n_samples // k
    interval = SPAN_DAYS * DAY // n_steps
    steps = T_START + np.arange(n_steps, dtype=np.int64) * interval
    step_chunk = max(1, 1_000_000 // k)
    # interleave spans and samples in time order, as live ingest would
    s_pos = 0
    for first in range(0, n_traces, chunk):
        count = min(chunk, n_traces - first)
        insert(store, "spans", span_batch(rng, first, count, n_traces))
        horizon = T_START + (first + count) * (SPAN_DAYS * DAY // n_traces)
        while s_pos < n_steps and steps[s_pos] < horizon:
            block = steps[s_pos : s_pos + step_chunk]
            insert(store, "samples", sample_batch(rng, series, block, interval))
            s_pos += len(block)
    while s_pos < n_steps:
        block = steps[s_pos : s_pos + step_chunk]
        insert(store, "samples", sample_batch(rng, series, block, interval))
        s_pos += len(block)


def count_correlated(spans: list[dict[str, Any]]) -> int:
    return sum(sum(len(v) for v in s["correlated"].values()) + count_correlated(s["children"])
               for s in spans)


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * runs) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=50_000_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        db = Path(tmp) / "bench.duckdb"
        store = DuckDBStore(db)
        t0 = time.perf_counter()
        generate(store, args.spans, args.samples)
        store.checkpoint()
        print(f"generated {args.spans:,} spans + {args.samples:,} samples in "
              f"{time.perf_counter() - t0:.1f} s; file {db.stat().st_size / 1e9:.2f} GB")
        t0 = time.perf_counter()
        hours = refresh_cost_rollup(store)
        print(f"initial rollup build: {hours} hours in {time.perf_counter() - t0:.1f} s")
        store.close()

        end = T_START + SPAN_DAYS * DAY
        now = end - 1234 * S  # not on an hour boundary: edge hours come from spans
        agent = CorrelatingAgent(Settings(db=str(db)), clock=lambda: now)
        cur = agent.store.cursor()
        week = {"since_ns": now - 7 * DAY, "until_ns": now}
        results = {}
        results["cost by team, 7 days (cost_report + summarize)"] = measure(
            lambda: summarize(cost_report(cur, group_by="team", **week)), args.runs)
        results["cost by team, 7 days, 1h buckets"] = measure(
            lambda: cost_report(cur, group_by="team", bucket_ns=3600 * S, **week), args.runs)
        results["cost by team, 7 days, raw scan (no rollup; reference)"] = measure(
            lambda: summarize(cost_report(cur, group_by="team", rollup=False, **week)), 5)
        results["cost by attribute user, 7 days (raw; reference)"] = measure(
            lambda: cost_report(cur, group_by="user", **week), 5)
        gpu_traces = [r[0] for r in cur.execute(
            "SELECT trace_id FROM (SELECT trace_id FROM spans WHERE cost_source = 'gpu_time') "
            "USING SAMPLE reservoir(100 ROWS) REPEATABLE (1)").fetchall()]
        warm, gpu_traces = gpu_traces[:20], gpu_traces[20:]
        for trace_id in warm:  # a running agent has recently read row groups cached
            correlate_trace(DuckDBReports(agent.store), trace_spans(cur, trace_id))
        it = iter(gpu_traces * 4)

        def detail() -> object:
            spans = trace_spans(cur, next(it))
            return correlate_trace(DuckDBReports(agent.store), spans)

        results["trace detail + correlation (read functions)"] = measure(detail, args.runs)
        app = FastAPI()
        for module in (cost, traces):
            app.include_router(module.build_router(agent))
        with TestClient(app) as client:
            it_http = iter(gpu_traces * 4)
            sample = client.get("/api/v1/traces/" + gpu_traces[0]).json()
            n_corr = count_correlated(sample["spans"])
            results["GET /api/v1/cost?group_by=team (7 days, HTTP in-process)"] = measure(
                lambda: client.get("/api/v1/cost", params={"group_by": "team"}).raise_for_status(),
                args.runs)
            results["GET /api/v1/traces/{id} (HTTP in-process)"] = measure(
                lambda: client.get("/api/v1/traces/" + next(it_http)).raise_for_status(),
                args.runs)
        agent.close()
        print(f"(one GPU trace carries {n_corr} correlated signal summaries)")
        print("\n| query | p50 ms | p95 ms |\n|---|---|---|")
        for name, (p50, p95) in results.items():
            print(f"| {name} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
