"""Energy and cost coverage on real-shaped telemetry (issue 21).

A 20-service, 8-GPU stack for ``--hours`` (default 1): services 0-9 call Llama-3.1-8B on
vLLM on two GPU hosts by ``server.address`` (``gpu-a`` with 4 H100, ``gpu-b.internal`` with
4 A100 80GB, tensor-parallel over the host's 4 GPUs); services 10-19 call hosted APIs
(gpt-4o-mini, claude-3-5-haiku, gemini-2.0-flash), and a few of their calls go to a model
no table knows. Client spans are OpenLLMetry-shaped and name no GPU. dcgm-exporter metrics
(``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, a cumulative counter with a start time, and
``DCGM_FI_DEV_GPU_UTIL``; ``Hostname``/``UUID``/``modelName`` labels) arrive every 15 s as a
Collector's Prometheus receiver pushes them. Each GPU's power follows the requests in flight
on it (70 W idle + 250 W x min(1, in flight / 8)), integrated per second into the counter.

All telemetry is real OTLP protobuf, decoded by the agent's codec and priced at ingest
(``Agent.price_at_ingest``) into a real DuckDB store; then the GPU pass
(``apply_gpu_attribution``) runs once over the whole range, with no configuration
(``gpu_hour_usd`` unset, no ``[[gpu_map]]``). Checked:

- the share of requests with a cost and with a Wh figure, each by source;
- every vLLM-served request has a measured figure;
- per GPU and counter interval: attributed + idle = measured, and measured = the counter
  increase the generator produced (both to 0.1 %); the requests' measured Wh add up to the
  GPUs' attributed Wh;
- the GPU pass's wall time per hour of telemetry.

Run: ``.venv/bin/python -m benchmarks.energy_coverage [--hours 1] [--rate 1.0]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from strata.agent.config import Settings
from strata.agent.finops.coverage import coverage
from strata.agent.finops.gpu import apply_gpu_attribution
from strata.agent.finops.report import refresh_cost_rollup
from strata.agent.ingest.otlp_codec import decode_metrics_request, decode_trace_request
from strata.agent.runner import Agent

from tests.otlp_factory import counter_request, gauge_request, make_span, trace_request

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
SCRAPE_S = 15
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
HOSTS = {  # DCGM Hostname -> (address the clients use, GPU model name)
    "gpu-a": ("gpu-a", "NVIDIA H100 80GB HBM3"),
    "gpu-b": ("gpu-b.internal", "NVIDIA A100-SXM4-80GB"),
}
GPUS_PER_HOST = 4
HOSTED = [("openai", "gpt-4o-mini", "api.openai.com"),
          ("anthropic", "claude-3-5-haiku-20241022", "api.anthropic.com"),
          ("gcp.gemini", "gemini-2.0-flash", "generativelanguage.googleapis.com")]
UNKNOWN_SHARE = 0.003  # hosted calls to a model no table knows: "unknown", never 0


def _uuid(host: str, i: int) -> str:
    return f"GPU-{host}-{i:04d}-0000-0000-000000000000"


def _attributes(provider: str, model: str, address: str, port: int, tokens: tuple[int, int]
                ) -> dict[str, Any]:
    return {"llm.request.type": "chat", "gen_ai.system": provider,
            "gen_ai.request.model": model, "gen_ai.response.model": model,
            "gen_ai.usage.prompt_tokens": tokens[0], "gen_ai.usage.completion_tokens": tokens[1],
            "server.address": address, "server.port": port}


def generate(hours: float, rate: float, seed: int = 7) -> tuple[list[Any], dict[str, Any]]:
    """(per-service lists of spans, and per GPU the counter readings), as plain data."""
    rng = np.random.default_rng(seed)
    end_s = int(hours * 3600)
    requests: list[tuple[str, int, int, dict[str, Any], str | None]] = []
    busy = {h: np.zeros(end_s + 1) for h in HOSTS}  # requests in flight, per second
    for svc in range(20):
        n = rng.poisson(rate * end_s)
        starts = np.sort(rng.uniform(0, end_s - 30, n))
        for start in starts:
            tokens = (int(rng.integers(200, 3000)), int(rng.integers(20, 600)))
            if svc < 10:
                host = "gpu-a" if svc % 2 == 0 else "gpu-b"
                duration = 0.2 + tokens[1] * 0.012 * rng.uniform(0.8, 1.5)
                attrs = _attributes("openai", LLAMA, HOSTS[host][0], 8000, tokens)
                a, b = int(start), int(start + duration) + 1
                busy[host][a:b] += 1
            else:
                host = None
                duration = 0.3 + tokens[1] * 0.008 * rng.uniform(0.8, 1.5)
                provider, model, address = HOSTED[svc % 3]
                if rng.random() < UNKNOWN_SHARE:
                    provider, model, address = "acme", "acme-router-v2", "llm.acme.example"
                attrs = _attributes(provider, model, address, 443, tokens)
            requests.append((f"svc-{svc:02d}", int(start * S), int(duration * S), attrs, host))
    counters: dict[str, list[tuple[int, float]]] = {}
    for host in HOSTS:
        watts = 70.0 + 250.0 * np.minimum(1.0, busy[host] / 8.0)
        for i in range(GPUS_PER_HOST):
            per_gpu = watts * rng.uniform(0.97, 1.03)
            mj = np.concatenate([[0.0], np.cumsum(per_gpu * 1000.0)])  # mJ at each second
            counters[_uuid(host, i)] = [(T0 + t * S, 5e9 + float(mj[t]))
                                        for t in range(0, end_s + 1, SCRAPE_S)]
    return requests, {"counters": counters, "busy": busy, "end_s": end_s}


def ingest(agent: Agent, requests: list[Any], gpus: dict[str, Any]) -> int:
    """Encode as OTLP protobuf, decode with the agent's codec, price at ingest, store."""
    by_service: dict[str, list[Span]] = {}
    for service, start, duration, attrs, _ in requests:
        by_service.setdefault(service, []).append(make_span(
            name=f"chat {attrs['gen_ai.request.model']}", start_ns=T0 + start,
            duration_ns=duration, attributes=attrs, kind=Span.SPAN_KIND_CLIENT))
    stored = 0
    for service, spans in by_service.items():
        resource = {"service.name": service, "host.name": f"app-{service}"}
        for i in range(0, len(spans), 2000):
            body = trace_request(spans[i:i + 2000], resource).SerializeToString()
            records = decode_trace_request(body, is_json=False, policy=agent.policy).spans
            agent.store.write_batch(records, costs=agent.price_at_ingest(records))
            stored += len(records)
    for host, (_, model_name) in HOSTS.items():
        resource = {"service.name": "dcgm-exporter", "service.instance.id": f"{host}:9400"}
        for i in range(GPUS_PER_HOST):
            labels = {"gpu": str(i), "UUID": _uuid(host, i), "modelName": model_name,
                      "Hostname": host, "device": f"nvidia{i}"}
            points = gpus["counters"][_uuid(host, i)]
            bodies = [counter_request("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", points,
                                      start_ns=T0 - 86_400 * S, labels=labels,
                                      resource=resource).SerializeToString()]
            bodies += [gauge_request("DCGM_FI_DEV_GPU_UTIL",
                                     float(min(100, 12 * gpus["busy"][host][(t - T0) // S])),
                                     t, labels, resource).SerializeToString()
                       for t, _ in points]
            samples = [s for b in bodies for s in decode_metrics_request(b, is_json=False).samples]
            agent.store.write_batch(samples=samples)
    return stored


def check(agent: Agent, requests: list[Any], gpus: dict[str, Any]) -> dict[str, Any]:
    cur = agent.store.cursor()
    end_ns = T0 + gpus["end_s"] * S
    cov = coverage(cur, since_ns=T0, until_ns=end_ns)["totals"]
    served = cur.execute(
        "SELECT count(*), count(*) FILTER (WHERE energy_source = 'measured'), "
        "sum(energy_wh) FILTER (WHERE energy_source = 'measured') FROM spans "
        "WHERE request_model = ?", [LLAMA]).fetchone()
    assert served is not None
    rows = cur.execute("SELECT device, start_ns, end_ns, measured_wh, attributed_wh, idle_wh "
                       "FROM gpu_energy ORDER BY device, start_ns").fetchall()
    truth = {dev: dict(points) for dev, points in gpus["counters"].items()}
    worst_split = worst_truth = 0.0
    for device, t0, t1, measured, attributed, idle in rows:
        worst_split = max(worst_split, abs(attributed + idle - measured) / measured)
        expected = (truth[device][t1] - truth[device][t0]) / 3_600_000
        worst_truth = max(worst_truth, abs(measured - expected) / expected)
    attributed_total = sum(r[4] for r in rows)
    return {
        "requests": cov["requests"], "cost": cov["cost"], "energy": cov["energy"],
        "cost_share": cov["cost_share"], "energy_share": cov["energy_share"],
        "gpu_served_requests": served[0], "gpu_served_measured": served[1],
        "gpu_intervals": len(rows),
        "worst_attributed_plus_idle_vs_measured": worst_split,
        "worst_measured_vs_generated_counter": worst_truth,
        "requests_wh_vs_attributed_wh": abs((served[2] or 0.0) - attributed_total)
        / attributed_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1.0, help="requests/s per service")
    args = parser.parse_args()
    requests, gpus = generate(args.hours, args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=str(Path(tmp) / "bench.duckdb"), gpu_enabled=False,
                            host_enabled=False)
        agent = Agent(settings)
        try:
            started = time.perf_counter()
            stored = ingest(agent, requests, gpus)
            ingest_s = time.perf_counter() - started
            started = time.perf_counter()
            written = apply_gpu_attribution(agent.store, since_ns=T0,
                                            until_ns=T0 + gpus["end_s"] * S, settings=settings,
                                            prices=agent.prices)
            gpu_pass_s = time.perf_counter() - started
            refresh_cost_rollup(agent.store)
            result = check(agent, requests, gpus)
        finally:
            agent.close()
    result.update({
        "hours": args.hours, "services": 20, "gpus": len(HOSTS) * GPUS_PER_HOST,
        "spans_stored": stored, "gpu_spans_written": written, "ingest_s": round(ingest_s, 2),
        "gpu_pass_s": round(gpu_pass_s, 3),
        "gpu_pass_s_per_hour": round(gpu_pass_s / args.hours, 3),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
    })
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
