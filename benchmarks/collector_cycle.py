"""CPU cost of the collectors (issue 4).

Measures process CPU time (user + system, all threads), not wall time:
1. NVML collector per GPU per collection (with the pynvml-shaped fake here; on a GPU host pass
   ``--real-nvml`` to use the driver);
2. parse + derive per fixture, scraped over real HTTP on 127.0.0.1;
3. agent-style: every collector (NVML with 8 fake GPUs, one scrape target per fixture, host)
   under the real scheduler at 1 s intervals for ``--seconds`` seconds, as % of one core.

Run: ``.venv/bin/python -m benchmarks.collector_cycle [--seconds 20] [--markdown]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from strata.collectors.host import HostCollector
from strata.collectors.nvml import NVMLCollector
from strata.collectors.scheduler import CollectorScheduler
from strata.collectors.scrape import PrometheusScrapeCollector

from tests.collectors.conftest import FIXTURES, free_port
from tests.fakes.nvml import FakeGPU, FakeNVML

PROFILES = {
    "vllm_metrics.txt": "vllm",
    "tgi_metrics.txt": "tgi",
    "triton_metrics.txt": "triton",
    "llamacpp_metrics.txt": "llamacpp",
    "weaviate_metrics.txt": "weaviate",
    "milvus_2.3.5_real_scrape.txt": "milvus",
    "qdrant_metrics.txt": "qdrant",
    "dcgm_exporter_metrics.txt": "prometheus",
}


def serve(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Serve *directory* from a separate process, so its CPU is not counted here."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "-d",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, base


def bench_in_memory(file: str, repeat: int) -> float:
    """The same collect() path with the body handed over in memory (httpx.MockTransport)."""
    body = (FIXTURES / file).read_bytes()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, stream=httpx.ByteStream(body), headers={"Content-Type": "text/plain"}
        )
    )
    client = httpx.Client(transport=transport)
    c = PrometheusScrapeCollector(file, "http://target/metrics", PROFILES[file], client=client)
    c.collect(0)
    times = cpu_ms(lambda i: c.collect(i * 1_000_000_000), repeat)
    client.close()
    return statistics.median(times)


def cpu_ms(fn: object, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        begin = time.process_time()
        fn(i)  # type: ignore[operator]
        out.append((time.process_time() - begin) * 1000)
    return out


def bench_nvml(gpus: int, repeat: int, real: bool) -> float:
    if real:
        c = NVMLCollector(host="bench")
    else:
        fake = FakeNVML([FakeGPU(f"GPU-{i:08d}", fan_speeds_pct=[40]) for i in range(gpus)])
        c = NVMLCollector(nvml=fake, host="bench")
    c.collect(0)
    times = cpu_ms(lambda i: c.collect(i * 1_000_000_000), repeat)
    n = len({s.device for s in c.collect(0)})
    c.close()
    return statistics.median(times) / n


def bench_parse(base: str, repeat: int) -> dict[str, tuple[int, float]]:
    out = {}
    for file, profile in PROFILES.items():
        c = PrometheusScrapeCollector(file, f"{base}/{file}", profile)
        c.collect(0)
        times = cpu_ms(lambda i, c=c: c.collect(i * 1_000_000_000), repeat)
        lines = sum(1 for _ in (FIXTURES / file).open())
        out[file] = (lines, statistics.median(times))
        c.close()
    return out


def bench_agent(base: str, seconds: float) -> float:
    fake = FakeNVML([FakeGPU(f"GPU-{i:08d}") for i in range(8)])
    collectors = [
        NVMLCollector(nvml=fake, host="bench"),
        HostCollector(host="bench"),
        *(PrometheusScrapeCollector(f, f"{base}/{f}", p) for f, p in PROFILES.items()),
    ]
    sink_count = [0]

    def sink(samples: object) -> None:
        sink_count[0] += len(samples)  # type: ignore[arg-type]

    sched = CollectorScheduler(collectors, sink, default_interval_s=1.0, timeout_s=0.9, seed=0)
    begin_cpu, begin = time.process_time(), time.monotonic()
    sched.start()
    time.sleep(seconds)
    sched.stop()
    return (time.process_time() - begin_cpu) / (time.monotonic() - begin) * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--real-nvml", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    server, base = serve(FIXTURES)
    try:
        nvml_1 = bench_nvml(1, args.repeat * 3, args.real_nvml)
        nvml_8 = bench_nvml(8, args.repeat, args.real_nvml)
        parse = bench_parse(base, args.repeat)
        milvus_mem = bench_in_memory("milvus_2.3.5_real_scrape.txt", args.repeat)
        agent = bench_agent(base, args.seconds)
    finally:
        server.terminate()
        server.wait(10)
    kind = "real NVML" if args.real_nvml else "fake NVML"
    rows = [
        f"| NVML collect, 1 GPU ({kind}) | {nvml_1:.2f} ms CPU per GPU |",
        f"| NVML collect, 8 GPUs ({kind}) | {nvml_8:.2f} ms CPU per GPU |",
        *(
            f"| scrape+parse+derive `{f}` ({lines} lines) | {ms:.2f} ms CPU |"
            for f, (lines, ms) in parse.items()
        ),
        f"| collect `milvus_2.3.5_real_scrape.txt` in memory, no socket | {milvus_mem:.2f} ms |",
        f"| all collectors at 1 s ({len(PROFILES)} targets + NVML x8 + host), {args.seconds:.0f} s"
        f" | {agent:.2f} % of one core |",
    ]
    print(
        f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; process CPU time (all threads)\n"
    )
    print("| measurement | CPU |\n|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
