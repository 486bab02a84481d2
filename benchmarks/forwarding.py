"""Forwarding overhead: committed spans/s of one agent with and without ``[forward]``.

Starts an upstream agent (the forwarding target) once, then alternates runs of an edge agent
without forwarding and with ``[forward] endpoint`` pointing at the upstream, each on a fresh
DuckDB, under the same load: a separate load process posting gzip'd protobuf batches of
realistic GenAI spans (``benchmarks/ingest.py``'s payloads: 512 spans, RAG traces, 2 KiB
prompts) over keep-alive connections. Reports acked (= committed) spans/s per run, the
median of each mode, the overhead, and for forwarding runs how many spans reached the
upstream by the end of the run and how long the backlog took to drain. A third mode,
``queue``, forwards to a port nobody listens on: it measures what forwarding costs on the
ingest path alone (encode, price, gzip, fsync'd append), without the upstream's CPU.

    .venv/bin/python benchmarks/forwarding.py --seconds 20 --rounds 3 --connections 4

Issue 7's goal: forwarding on costs <= 15 % of ingest throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest import (  # noqa: E402
    SPANS_PER_BATCH,
    free_port,
    realistic_batch,
    rss_mib,
    run_load,
    wait_ready,
)


def start_agent(workdir: Path, *, module: str, config: Path | None = None,
                cli: bool = False) -> tuple[subprocess.Popen[bytes], str, str]:
    otlp, api = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    args = [sys.executable, "-m", module, *(["agent"] if cli else []),
            "--db", str(workdir / "agent.duckdb"), "--otlp-port", str(otlp),
            "--api-port", str(api), "--otlp-grpc-port", "0",  # two agents: no shared 4317
            "--log-level", "warning"]
    if config is not None:
        args += ["--config", str(config)]
    log = (workdir / "agent.log").open("ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    wait_ready(f"http://127.0.0.1:{api}/api/v1/health")
    return proc, f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{api}"


def span_count(api: str) -> int:
    return int(httpx.get(f"{api}/api/v1/health", timeout=30).json()["counts"]["spans"])


def edge_run(bodies: list[bytes], args: argparse.Namespace, workdir: Path, *,
             upstream_api: str | None, upstream_otlp: str | None) -> dict:
    workdir.mkdir(parents=True)
    config = workdir / "strata.toml"
    text = "[gpu]\nenabled = false\n[host]\nenabled = false\n"
    if upstream_otlp is not None:  # (a dead endpoint in "queue" mode: enqueue cost only)
        text += f'[forward]\nendpoint = "{upstream_otlp}"\nqueue_dir = "{workdir / "queue"}"\n'
    config.write_text(text)
    before = span_count(upstream_api) if upstream_api else 0
    proc, otlp, _api = start_agent(workdir, module="strata.agent.cli", config=config,
                                   cli=True)
    try:
        result = run_load(f"{otlp}/v1/traces", bodies, args.seconds, args.connections,
                          proc.pid)
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(proc.pid)
        if upstream_api is not None:
            result["upstream_at_end"] = span_count(upstream_api) - before
            started = time.monotonic()
            while span_count(upstream_api) - before < result["acked_spans"]:
                if time.monotonic() - started > 600:
                    break
                time.sleep(0.5)
            result["drain_s"] = round(time.monotonic() - started, 1)
            result["upstream_total"] = span_count(upstream_api) - before
        return result
    finally:
        proc.terminate()
        proc.wait(60)


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians over rounds; overheads are paired per round (the same machine state)."""

    def paired(mode: str) -> list[float]:
        return [round(100 * (1 - r["spans_per_s"] / o["spans_per_s"]), 1)
                for r, o in zip(runs[mode], runs["off"], strict=True)]

    return {
        "spans_per_s_median": {m: round(statistics.median(r["spans_per_s"] for r in rs))
                               for m, rs in runs.items()},
        "p99_ms_median": {m: round(statistics.median(r["p99_ms"] for r in rs), 1)
                          for m, rs in runs.items()},
        "queue_only_overhead_pct_by_round": paired("queue"),
        "queue_only_overhead_pct_median": statistics.median(paired("queue")),
        "overhead_pct_by_round": paired("on"),
        "overhead_pct_median": statistics.median(paired("on")),
        "forwarded_by_end_pct_median": round(statistics.median(
            100 * r["upstream_at_end"] / r["acked_spans"] for r in runs["on"]), 1),
        "drain_s_max": max(r["drain_s"] for r in runs["on"]),
        "all_forwarded": all(r["upstream_total"] >= r["acked_spans"] for r in runs["on"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40,
                        help="payloads generated per second of load (the most it can send)")
    args = parser.parse_args()
    rng = random.Random(0)
    start_ns = time.time_ns() - 3600 * 10**9
    count = int(args.seconds * args.rate)
    # Each body is posted once, so a round needs enough for its seconds; each round its own
    # (new span ids), or the shared upstream would count a later round's spans as stored.
    rounds = [[realistic_batch(rng, start_ns + k * 10**9 // int(args.rate)) for k in range(count)]
              for _ in range(args.rounds)]
    bodies = rounds[0]
    print(f"payload: {SPANS_PER_BATCH} spans, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} "
          f"KiB gzip per request; {args.rounds} rounds x {args.seconds:g} s per mode, "
          f"{args.connections} connections, {os.cpu_count()} CPUs", flush=True)
    runs: dict[str, list[dict]] = {"off": [], "queue": [], "on": []}
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the sender only retries
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "upstream").mkdir()
        upstream, up_otlp, up_api = start_agent(root / "upstream", module="strata.agent.cli",
                                                cli=True)
        try:
            for i in range(args.rounds):
                for mode in ("off", "queue", "on"):
                    on = mode == "on"
                    target = {"off": None, "queue": dead, "on": up_otlp}[mode]
                    result = edge_run(rounds[i], args, root / f"{mode}-{i}",
                                      upstream_api=up_api if on else None,
                                      upstream_otlp=target)
                    runs[mode].append(result)
                    print(json.dumps({"mode": mode, "round": i, **result}), flush=True)
        finally:
            upstream.terminate()
            upstream.wait(60)
    summary = summarise(runs)
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
