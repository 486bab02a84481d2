"""Disk full (RELIABILITY F1, F2, F4) and fatal-store invalidation (D5), with real faults.

The store lives on a real 64 MiB tmpfs mounted in a private user + mount namespace
(``unshare -rm``; no root needed where unprivileged user namespaces are allowed). A holder
process keeps the namespace alive across agent restarts; agents are started inside it with
``nsenter`` and the test reads the volume through ``/proc/<holder>/root``. The log volume
fault is ``/dev/full`` as the agent's stdout and stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest
from strata.agent.ingest.writer import COMMIT_ERROR_LOG_INTERVAL_S

from tests.conftest import LiveAgent, free_port, start_process, wait_ready
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import loose, wait_until

PB = {"Content-Type": "application/x-protobuf"}
MIB = 1024 * 1024


@dataclass
class TmpfsVolume:
    """A size-limited tmpfs at *mount*, visible only inside the holder's namespace."""

    holder: subprocess.Popen[bytes]
    mount: Path

    @property
    def outside(self) -> Path:
        """The same directory as this process sees it (through the holder's root)."""
        return Path(f"/proc/{self.holder.pid}/root") / self.mount.relative_to("/")

    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-U", "-m", "--preserve-credentials"]

    def close(self) -> None:
        self.holder.kill()
        self.holder.communicate(timeout=10)


@pytest.fixture(name="volume")
def volume_fixture(tmp_path: Path) -> Iterator[TmpfsVolume]:
    mount = tmp_path / "vol"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=64m tmpfs "{mount}" && echo ready && exec sleep 600'
    holder = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert holder.stdout is not None
    if holder.stdout.readline() != b"ready\n":
        holder.kill()
        _, err = holder.communicate(timeout=10)
        pytest.skip(f"no private tmpfs here (unshare -rm): {err.decode().strip()[:200]}")
    volume = TmpfsVolume(holder, mount)
    yield volume
    volume.close()


def launch_in(volume: TmpfsVolume, tmp_path: Path, env: dict[str, str]) -> LiveAgent:
    otlp, api = free_port(), free_port()
    db = volume.mount / "data" / "agent.duckdb"
    args = [*volume.enter(), sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db),
            "--otlp-port", str(otlp), "--api-port", str(api)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    full_env.update({"STRATA_GPU_ENABLED": "false", "STRATA_HOST_ENABLED": "false", **env})
    log = tmp_path / "agent.log"
    process = start_process(args, full_env, log)
    live = LiveAgent(process, db, f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{api}", log,
                     full_env, args)
    wait_ready(live.api_url, process, log)
    return live


def filler_batch(n: int = 200) -> tuple[bytes, list[str]]:
    """*n* spans with 1.5 KiB of incompressible attribute text each (fills the WAL fast)."""
    spans = [make_span(attributes={**genai_attributes(), "app.blob": os.urandom(768).hex()})
             for _ in range(n)]
    return trace_request(spans).SerializeToString(), [s.span_id.hex() for s in spans]


def stored_ids(db: Path, scratch: Path) -> list[str]:
    """Span ids in *db*, read from a copy (DuckDB resolves /proc/<pid>/root links away)."""
    copy = scratch / "copy.duckdb"
    copy.write_bytes(db.read_bytes())
    wal = db.with_name(db.name + ".wal")
    if wal.exists():
        copy.with_name(copy.name + ".wal").write_bytes(wal.read_bytes())
    with duckdb.connect(str(copy), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT span_id FROM spans").fetchall()]


def test_disk_full_never_acks_then_restart_recovers(volume: TmpfsVolume, tmp_path: Path) -> None:
    """F1, F2, D5: on ENOSPC the receiver answers 503 (never 200), count(*) never drops; a
    store invalidated by a failed checkpoint is detected, acks stop and the agent exits
    non-zero within 10 s; once space is freed the restarted agent opens the DB cleanly, is
    ready in 10 s, accepts again, and every acknowledged span is there."""
    (volume.outside / "ballast").write_bytes(b"\x01" * 44 * MIB)  # leaves ~20 MiB
    agent = launch_in(volume, tmp_path, {"STRATA_ANALYZE_INTERVAL": "1s"})
    acked: list[str] = []
    statuses: dict[int, int] = {}
    counts: list[int] = []
    first_refusal = exited_at = None
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline and agent.process.poll() is None:
            body, ids = filler_batch()
            try:
                reply = client.post(agent.otlp_endpoint + "/v1/traces", content=body,
                                    headers=PB)
            except httpx.TransportError:
                continue  # the agent is going away; poll() ends the loop
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            if reply.status_code == 200:
                acked += ids
            else:
                assert reply.status_code == 503, reply.text
                assert int(reply.headers["Retry-After"]) > 0
                first_refusal = first_refusal or time.monotonic()
                if time.monotonic() - first_refusal > 30:
                    break  # refusing but never failing fatally: checked below
            try:
                health = client.get(agent.api_url + "/api/v1/health")
            except httpx.TransportError:
                continue
            if health.status_code == 200:
                counts.append(health.json()["counts"]["spans"])
    exited_at = time.monotonic()
    try:
        code = agent.process.wait(15)
    except subprocess.TimeoutExpired:
        code = None
    assert first_refusal is not None, f"the disk never filled: {statuses}"
    assert counts == sorted(counts), "count(*) decreased without retention"
    assert 200 in statuses
    assert acked
    assert code is not None, f"no fatal error, no exit: {agent.log.read_text()[-800:]}"
    assert code != 0
    assert exited_at - first_refusal <= loose(10) + 30  # + 30 s of non-fatal refusals at most
    log = agent.log.read_text()
    assert "store failed" in log
    # F4 / issue 18: no second traceback from a ROLLBACK after the failed COMMIT, and the
    # commit error is one line per interval (with a count), not one per refused request.
    assert "cannot rollback" not in log
    commit_error_lines = log.count("records failed")
    assert 1 <= commit_error_lines <= 2 + (exited_at - first_refusal) / COMMIT_ERROR_LOG_INTERVAL_S

    # The operator (or the volume's own retention) frees space; the supervisor restarts.
    (volume.outside / "ballast").unlink()
    agent.restart(timeout_s=loose(10))
    assert agent.get("/api/v1/health").json()["counts"]["spans"] >= max(counts)
    body, ids = filler_batch(50)
    reply = httpx.post(agent.otlp_endpoint + "/v1/traces", content=body, headers=PB, timeout=30)
    assert reply.status_code == 200
    acked += ids
    assert agent.stop(signal.SIGTERM) == 0
    stored = set(stored_ids(volume.outside / "data" / "agent.duckdb", tmp_path))
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans missing"


def test_log_volume_full_keeps_the_agent_running(tmp_path: Path) -> None:
    """F4: with stdout and stderr on a full device the agent starts, ingests, counts the log
    records it could not write, and exits 0 on SIGTERM."""
    otlp, api = free_port(), free_port()
    config = tmp_path / "strata.toml"
    dead = free_port()  # a scrape target that refuses: the scheduler logs a warning
    config.write_text(f'[[scrape]]\nname = "dead"\nurl = "http://127.0.0.1:{dead}/metrics"\n'
                      'interval = "1s"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env.update({"STRATA_GPU_ENABLED": "false", "STRATA_HOST_ENABLED": "false"})
    args = [sys.executable, "-m", "strata.agent.cli", "agent", "--config", str(config), "--db",
            str(tmp_path / "a.duckdb"), "--otlp-port", str(otlp), "--api-port", str(api)]
    with open("/dev/full", "wb") as full:
        process = subprocess.Popen(args, stdout=full, stderr=full, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{api}", process, tmp_path / "none.log")
        body = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
        reply = httpx.post(f"http://127.0.0.1:{otlp}/v1/traces", content=body, headers=PB)
        assert reply.status_code == 200

        def dropped() -> float:
            text = httpx.get(f"http://127.0.0.1:{api}/metrics", timeout=10).text
            return next((float(line.split()[-1]) for line in text.splitlines()
                         if line.startswith("strata_log_records_dropped_total")), 0.0)

        wait_until(lambda: dropped() >= 2, 20, "the ready line and the scrape warning counted")
        health = httpx.get(f"http://127.0.0.1:{api}/api/v1/health").json()
        assert health["counts"]["spans"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
