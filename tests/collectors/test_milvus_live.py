"""A real embedded Milvus 2.3.5, loopback-only in a private network namespace, scraped live.

Milvus binds all interfaces and cannot be told otherwise, so it runs inside
``unshare -n`` with only ``lo`` up. A network namespace also hides it from this test process,
so the scrape runs inside the same namespace: a driver script (Milvus's own venv) starts the
server, inserts 3 x 2,000 vectors with a flush each, indexes, loads and searches, then runs
our ``PrometheusScrapeCollector`` with the repo's interpreter until the loaded segments show,
and prints one JSON line. The ground truth comes from pymilvus
(``utility.get_query_segment_info``). Milvus and its venv are installed on demand and cached
in ``~/.cache/strata-tests/milvus-venv`` (pins from COMPONENTS.md section 2a).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

VENV = Path(os.environ.get("STRATA_MILVUS_VENV", Path.home() / ".cache/strata-tests/milvus-venv"))
PINS = [
    "milvus==2.3.5",
    "setuptools<80",
    "pymilvus>=2.3,<2.4",
    "marshmallow<3.21",
    "numpy<2",
    "pandas<2.2",
]

DRIVER = r"""
import json, random, subprocess, sys, time
from milvus import MilvusServer
from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections,
                      utility)

data_dir, repo_python, repo = sys.argv[1:4]
timings = {}
t0 = time.monotonic()
server = MilvusServer()
server.set_base_dir(data_dir)
server.start()
timings["milvus_start_s"] = round(time.monotonic() - t0, 1)
try:
    connections.connect(host="127.0.0.1", port=server.listen_port)
    fields = [FieldSchema("id", DataType.INT64, is_primary=True),
              FieldSchema("v", DataType.FLOAT_VECTOR, dim=32)]
    coll = Collection("strata_live", CollectionSchema(fields))
    rng = random.Random(0)
    for batch in range(3):
        ids = list(range(batch * 2000, (batch + 1) * 2000))
        coll.insert([ids, [[rng.random() for _ in range(32)] for _ in ids]])
        coll.flush()
    coll.create_index("v", {"index_type": "IVF_FLAT", "metric_type": "L2",
                            "params": {"nlist": 16}})
    coll.load()
    for _ in range(20):
        coll.search([[rng.random() for _ in range(32)]], "v",
                    {"metric_type": "L2", "params": {"nprobe": 4}}, limit=5)
    coll.query("id < 10", output_fields=["id"])
    segments = utility.get_query_segment_info("strata_live")
    truth = {"segments": len(segments), "rows": sum(s.num_rows for s in segments),
             "collection_id": str(coll.describe()["collection_id"])}
    timings["workload_s"] = round(time.monotonic() - t0, 1)
    url = f"http://127.0.0.1:{server.webservice_port}/metrics"
    scraped = subprocess.run(
        [repo_python, "-c", SCRAPER, url, str(truth["segments"])],
        cwd=repo, env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False)
    timings["total_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps({"truth": truth, "timings": timings, "rc": scraped.returncode,
                      "scrape": scraped.stdout.strip().splitlines()[-1:] ,
                      "stderr": scraped.stderr[-2000:]}), flush=True)
finally:
    server.stop()
"""

# Runs with the repo's .venv inside the namespace: our collector, polled until the loaded
# segments appear (Milvus refreshes some gauges asynchronously), then one JSON line; if they
# never appear, the exit status and stderr say what it saw last.
SCRAPER = r"""
import json, sys, time
from strata.collectors.scrape import PrometheusScrapeCollector
from tests.waiting import wait_until
url, expected = sys.argv[1], float(sys.argv[2])
c = PrometheusScrapeCollector("milvus-live", url, "milvus")
reads = []

def segments():
    samples = reads[-1]
    by_state = {s.attributes["segment_state"]: s.value for s in samples
                if s.name == "vectordb.segments.by_state"}
    shard = {s.device: s.value for s in samples if s.name == "vectordb.shard.segments"}
    return by_state, shard

def loaded():
    reads.append(c.collect(time.time_ns()))
    by_state, shard = segments()
    return by_state.get("Flushed") == expected and list(shard.values()) == [expected]

try:
    wait_until(loaded, 45, "the flushed segments in Milvus's metrics", interval_s=1)
except AssertionError as exc:
    sys.exit(f"{exc}: {segments()}")
samples = reads[-1]
by_state, shard = segments()
c.close()
print(json.dumps({
    "polls": len(reads),
    "by_state": by_state,
    "shard_segments": shard,
    "entries_per_segment": {s.device: s.value for s in samples
                            if s.name == "vectordb.shard.entries_per_segment"},
    "rows_loaded": sum(s.value for s in samples if s.name == "milvus_querynode_entity_num"),
    "search_p50_s": [s.value for s in samples if s.name == "vectordb.query.latency.p50"
                     and s.attributes.get("query_type") == "search"],
    "units": sorted({s.unit for s in samples if s.name == "milvus_proxy_sq_latency_sum"}),
}))
"""


def _milvus_python() -> Path:
    """The cached venv's python, installing the pinned packages on first use."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import milvus, pymilvus"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    staging = VENV.with_name(VENV.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True, timeout=120)
    pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "-q", *PINS]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"cannot install Milvus ({' '.join(PINS)}): {result.stderr[-400:]}")
    shutil.rmtree(VENV, ignore_errors=True)
    staging.rename(VENV)  # venv pythons find their site-packages relative to themselves
    return python


def _processes_using(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_live_milvus_segment_counts(tmp_path: Path) -> None:
    """3 flushed inserts -> 3 segments: our collector's counts equal Milvus's own segment info."""
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, check=False
    )
    if probe.returncode:
        pytest.skip(f"unshare -n not permitted here: {probe.stderr.decode().strip()}")
    python = _milvus_python()
    driver = tmp_path / "driver.py"
    driver.write_text(f"SCRAPER = {SCRAPER!r}\n{DRIVER}")
    data_dir = tmp_path / "milvus-data"
    repo_python = REPO / ".venv" / "bin" / "python"
    if not repo_python.exists():
        repo_python = Path(sys.executable)
    cmd = [
        "unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
        str(python), str(driver), str(data_dir), str(repo_python), str(REPO),
    ]  # fmt: skip
    begin = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        leftovers = _processes_using(data_dir)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
    elapsed = time.monotonic() - begin
    assert leftovers == [], "Milvus processes were left running"
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["rc"] == 0, report["stderr"]
    scrape = json.loads(report["scrape"][0])
    truth = report["truth"]
    assert truth == {"segments": 3, "rows": 6000, "collection_id": truth["collection_id"]}
    assert scrape["by_state"]["Flushed"] == 3.0
    assert scrape["shard_segments"] == {truth["collection_id"]: 3.0}
    assert scrape["entries_per_segment"] == {truth["collection_id"]: 2000.0}
    assert scrape["rows_loaded"] == 6000.0
    assert len(scrape["search_p50_s"]) == 1
    assert 0 < scrape["search_p50_s"][0] < 10  # seconds: Milvus's ms converted once
    print(f"milvus live: {elapsed:.1f}s total, {report['timings']}, polls={scrape['polls']}")
