"""SDK overhead: added process CPU and wall time per OpenAI call, vs. uninstrumented and peers.

Every contender instruments the same ``client.chat.completions.create`` calls against the
same local LLM server (``tests/sdk/llm_server.py``, its own process) and exports OTLP/HTTP
to the same local sink (its own process, answers 200 to every POST), so neither server's
CPU is counted. Each measurement is one fresh worker process:

    warm-up calls, then N calls timed one by one (wall), then a flush of the contender's
    exporters; CPU = process CPU time (all threads, exporter thread included) over the
    N calls and the flush, divided by N.

Rounds interleave the contenders in a shuffled order; "added" is contender minus the
uninstrumented baseline run in the same venv and the same round; the report gives the
median over rounds.

Contenders (peers are only benchmark contenders; each lives in its own venv, created
with ``--setup``, so they never touch the project venv):

- ``strata``: this SDK (project venv), ``init(service=..., endpoint=sink)``
- ``openllmetry``: ``opentelemetry-instrumentation-openai`` with an OTel SDK
  TracerProvider + BatchSpanProcessor + OTLP/HTTP exporter and a MeterProvider
- ``openlit``: ``openlit.init(otlp_endpoint=sink)``
- ``langfuse``: ``from langfuse.openai import openai`` with ``LANGFUSE_HOST=sink``

Usage::

    python benchmarks/sdk_overhead.py --setup          # create /tmp/bench-venv-* (network)
    python benchmarks/sdk_overhead.py --rounds 5 --calls 1000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PY = str(ROOT / ".venv" / "bin" / "python")
VENV_DIR = Path(os.environ.get("STRATA_BENCH_VENVS", "/tmp"))
PEERS = {
    "openllmetry": ["opentelemetry-instrumentation-openai"],
    "openlit": ["openlit"],
    "langfuse": ["langfuse"],
}
BASE_PACKAGES = ["openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"]


def peer_python(name: str) -> str:
    return str(VENV_DIR / f"bench-venv-{name}" / "bin" / "python")


# ---------------------------------------------------------------- worker (one process)

def _setup_contender(name: str, endpoint: str) -> Any:
    """Instrument per *name*; return a flush callable."""
    if name == "baseline":
        return lambda: None
    if name == "strata":
        sys.path.insert(0, str(ROOT))
        from strata.agent.sdk import init

        handle = init("bench", endpoint=endpoint, instrument=("openai",))
        assert handle is not None
        return handle.force_flush
    if name == "openllmetry":
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": "bench"})
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint + "/v1/traces")))
        trace.set_tracer_provider(tp)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint + "/v1/metrics"))
        mp = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(mp)
        OpenAIInstrumentor().instrument()

        def flush() -> None:
            tp.force_flush()
            mp.force_flush()

        return flush
    if name == "openlit":
        import tempfile

        import openlit
        from opentelemetry import metrics, trace

        # A local (empty) price table: openlit would otherwise fetch one from GitHub.
        prices = Path(tempfile.mkdtemp()) / "pricing.json"
        prices.write_text('{"chat": {}, "embeddings": {}, "images": {}, "audio": {}}')
        openlit.init(otlp_endpoint=endpoint, application_name="bench", collect_gpu_stats=False,
                     disable_batch=False, pricing_json=str(prices))

        def flush_openlit() -> None:
            trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
            provider = metrics.get_meter_provider()
            if hasattr(provider, "force_flush"):
                provider.force_flush()

        return flush_openlit
    if name == "langfuse":
        os.environ.setdefault("LANGFUSE_HOST", endpoint)
        os.environ.setdefault("LANGFUSE_BASE_URL", endpoint)
        os.environ.setdefault("LANGFUSE_PUBLIC_KEY", "pk-lf-bench")
        os.environ.setdefault("LANGFUSE_SECRET_KEY", "sk-lf-bench")
        import langfuse

        def flush_langfuse() -> None:
            client = langfuse.get_client() if hasattr(langfuse, "get_client") else None
            if client is not None:
                client.flush()

        return flush_langfuse
    raise SystemExit(f"unknown contender {name}")


def _client(name: str, base_url: str) -> Any:
    if name == "langfuse":
        from langfuse.openai import openai as lf_openai

        return lf_openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)
    import openai

    return openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)


def worker(args: argparse.Namespace) -> None:
    flush = _setup_contender(args.worker, args.endpoint)
    client = _client(args.worker, args.base_url)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    create = client.chat.completions.create
    stream = args.mode == "stream"

    def call() -> None:
        if stream:
            for _ in create(model="gpt-4o-mini", messages=messages, stream=True,
                            stream_options={"include_usage": True}):
                pass
        else:
            create(model="gpt-4o-mini", messages=messages, temperature=0.0)

    for _ in range(args.warmup):
        call()
    flush()
    walls = []
    cpu0 = time.process_time()
    for _ in range(args.calls):
        t0 = time.perf_counter()
        call()
        walls.append(time.perf_counter() - t0)
    flush()
    cpu = time.process_time() - cpu0
    print(json.dumps({"cpu_us": cpu / args.calls * 1e6,
                      "wall_us": statistics.median(walls) * 1e6}), flush=True)
    os._exit(0)  # skip atexit flushes: they are not part of the measurement


def isolated(ns: argparse.Namespace) -> None:
    """Our instrumentation alone: the wrapped ``create`` around a fake that returns parsed
    objects (no HTTP, no parsing), vs the fake itself; exporter thread included (flush).

    Far less noisy than the end-to-end runs on a shared machine, and an upper bound on
    what the SDK adds to a real call's CPU (minus GC/cache effects of the extra objects).
    """
    sys.path.insert(0, str(ROOT))
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from strata.agent.sdk import init, openai_instr, shutdown

    from tests.sdk import llm_server

    sink, endpoint = _spawn([sys.executable, __file__, "--sink"])
    handle = init("bench", endpoint=endpoint, instrument=(), set_global=False)
    assert handle is not None
    body = {"model": "gpt-4o-mini", "messages": [], "stream_options": {"include_usage": True}}
    done = ChatCompletion.model_validate(llm_server.chat_completion(body))
    chunks = [ChatCompletionChunk.model_validate(c) for c in llm_server.chat_stream(body)]

    class FakeStream:  # iterates self._iterator and closes like openai.Stream
        def __init__(self) -> None:
            self._iterator = iter(chunks)

        def __iter__(self) -> Any:
            yield from self._iterator

        def close(self) -> None:
            pass

    def fake(self: Any, **kw: Any) -> Any:
        return FakeStream() if kw.get("stream") else done

    sync_factory, _ = openai_instr._factories(
        "chat", openai_instr._CHAT_PARAMS, openai_instr._chat_summary,
        openai_instr._ChatStream)
    wrapped = sync_factory(fake)
    resource = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x").chat.completions
    msgs = [{"role": "user", "content": "hi"}]

    def run(fn: Any, stream: bool, n: int = 2000) -> float:
        handle.force_flush()
        t0 = time.process_time()
        for _ in range(n):
            if stream:
                for _ in fn(resource, model="gpt-4o-mini", messages=msgs, stream=True,
                            stream_options={"include_usage": True}):
                    pass
            else:
                fn(resource, model="gpt-4o-mini", messages=msgs, temperature=0.0)
        handle.force_flush()
        return (time.process_time() - t0) / n * 1e6

    for mode in ns.modes:
        stream = mode == "stream"
        added = [run(wrapped, stream) - run(fake, stream) for _ in range(ns.rounds)]
        print(f"| {mode} | strata (isolated) | {statistics.median(added):.0f} | "
              f"spans dropped: {handle.spans_dropped} |")
    shutdown()
    sink.terminate()


# ---------------------------------------------------------------- orchestration

class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"{}" if "json" in (self.headers.get("Content-Type") or "") else b""
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


def sink_main(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Sink)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def _spawn(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _run_worker(python: str, name: str, mode: str, ns: argparse.Namespace,
                base_url: str, endpoint: str) -> dict[str, float] | None:
    cmd = [python, __file__, "--worker", name, "--mode", mode, "--calls", str(ns.calls),
           "--warmup", str(ns.warmup), "--base-url", base_url, "--endpoint", endpoint]
    env = {**os.environ, "OTEL_SERVICE_NAME": "bench", "OTEL_PYTHON_LOG_LEVEL": "error"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    print(f"  {name}/{mode} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return None


def setup_venvs() -> None:
    for name, packages in PEERS.items():
        venv = VENV_DIR / f"bench-venv-{name}"
        if not venv.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *BASE_PACKAGES, *packages],
                       check=False)


def orchestrate(ns: argparse.Namespace) -> None:
    server, base_url = _spawn([PROJECT_PY, str(ROOT / "tests" / "sdk" / "llm_server.py"),
                               "--port", "0"])
    sink = None
    endpoint = ns.endpoint
    if endpoint is None:
        sink, endpoint = _spawn([sys.executable, __file__, "--sink"])
    envs = {"strata": PROJECT_PY}
    for peer in ns.peers:
        if Path(peer_python(peer)).exists():
            envs[peer] = peer_python(peer)
        else:
            print(f"skipping {peer}: no venv at {peer_python(peer)} (run --setup)",
                  file=sys.stderr)
    runs: list[tuple[str, str]] = []  # (venv key, contender)
    for key in envs:
        runs += [(key, "baseline"), (key, key)]
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    rng = random.Random(ns.seed)
    try:
        for rnd in range(ns.rounds):
            order = [(k, c, m) for k, c in runs for m in ns.modes]
            rng.shuffle(order)
            for key, contender, mode in order:
                res = _run_worker(envs[key], contender, mode, ns, base_url, endpoint)
                if res is not None:
                    results.setdefault((key, contender, mode), []).append(res)
            print(f"round {rnd + 1}/{ns.rounds} done", file=sys.stderr)
    finally:
        server.terminate()
        if sink is not None:
            sink.terminate()
    report(results, envs, ns)


def report(results: dict[tuple[str, str, str], list[dict[str, float]]],
           envs: dict[str, str], ns: argparse.Namespace) -> None:
    rows = []
    for mode in ns.modes:
        for key in envs:
            base = results.get((key, "baseline", mode), [])
            inst = results.get((key, key, mode), [])
            n = min(len(base), len(inst))
            if n == 0:
                continue
            cpu = [inst[i]["cpu_us"] - base[i]["cpu_us"] for i in range(n)]
            wall = [inst[i]["wall_us"] - base[i]["wall_us"] for i in range(n)]
            rows.append({"mode": mode, "contender": key,
                         "added_cpu_us": statistics.median(cpu),
                         "added_wall_us": statistics.median(wall),
                         "baseline_cpu_us": statistics.median(b["cpu_us"] for b in base[:n]),
                         "baseline_wall_us": statistics.median(b["wall_us"] for b in base[:n]),
                         "rounds": n})
    print("| mode | contender | added CPU µs/call | added wall µs/call | baseline CPU µs "
          "| baseline wall µs | rounds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["mode"], r["added_cpu_us"])):
        print(f"| {r['mode']} | {r['contender']} | {r['added_cpu_us']:.0f} | "
              f"{r['added_wall_us']:.0f} | {r['baseline_cpu_us']:.0f} | "
              f"{r['baseline_wall_us']:.0f} | {r['rounds']} |")
    if ns.json:
        Path(ns.json).write_text(json.dumps(rows, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="create the peers' venvs and exit")
    p.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="nonstream", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", default=None,
                   help="OTLP/HTTP endpoint (default: a local sink process)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--modes", nargs="+", default=["nonstream", "stream"])
    p.add_argument("--peers", nargs="*", default=list(PEERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--isolated", action="store_true",
                   help="measure our wrapper alone around a fake create() (in-process)")
    ns = p.parse_args()
    if ns.setup:
        setup_venvs()
    elif ns.sink:
        sink_main(0)
    elif ns.worker:
        worker(ns)
    elif ns.isolated:
        isolated(ns)
    else:
        orchestrate(ns)


if __name__ == "__main__":
    main()
