"""Startup refusals and data-at-rest hygiene of `strata agent` (RELIABILITY S2, S10, S11)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from packaging.version import Version
from strata.agent.server import GIL_SWITCH_INTERVAL_S

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import loose


def run_agent(tmp_path: Path, db: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    clean.update(env or {})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db), "--otlp-port", "0",
         "--api-port", "0", *extra], capture_output=True, text=True, timeout=60, env=clean)
    return result, time.monotonic() - started


def test_non_loopback_bind_without_token_is_refused_within_2s(tmp_path: Path) -> None:
    """S2: 0.0.0.0 without a token exits non-zero in <= 2 s, saying why (before the heavy
    imports and before the store is opened)."""
    result, elapsed = run_agent(tmp_path, tmp_path / "a.duckdb", "--host", "0.0.0.0")  # noqa: S104
    assert result.returncode != 0
    assert "without an API token" in result.stderr
    assert elapsed <= loose(2.0)
    assert not (tmp_path / "a.duckdb").exists()


def test_world_writable_data_directory_is_refused(tmp_path: Path) -> None:
    """S10: a database directory every user can write to is refused (DuckDB trusts its
    file); nothing is created there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result, _ = run_agent(tmp_path, shared / "a.duckdb")
    assert result.returncode != 0
    assert "writable by every user" in result.stderr
    assert list(shared.iterdir()) == []


def test_data_files_are_private(live_agent: LiveAgent) -> None:
    """S10: the DB and its WAL are 0600, owned by the agent's user."""
    body = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/traces", content=body,
                       headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert reply.status_code == 200
    live_agent.stop(signal.SIGKILL)  # keep the WAL on disk
    files = [p for p in live_agent.db.parent.iterdir() if p.name.startswith(live_agent.db.name)]
    assert {p.name for p in files} == {live_agent.db.name, live_agent.db.name + ".wal"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path.name, oct(path.stat().st_mode))
        assert path.stat().st_uid == os.getuid()


def test_fresh_data_directory_is_0700(tmp_path: Path) -> None:
    """S10: a data directory the store creates is private (0700)."""
    from strata.agent.store.db import DuckDBStore

    store = DuckDBStore(tmp_path / "new" / "a.duckdb")
    store.close()
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_pure_python_protobuf_is_refused(tmp_path: Path) -> None:
    """S11: the agent asserts protobuf's upb backend at startup and refuses the pure-Python
    one (slow, and not the parser the I3 recursion tests cover)."""
    result, _ = run_agent(tmp_path, tmp_path / "a.duckdb",
                          env={"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"})
    assert result.returncode != 0
    assert "upb" in result.stderr


# First releases fixing the CVEs the plan cites (and others in the same packages).
FIXED_IN = {
    "protobuf": {5: "5.29.5", 6: "6.31.1", 4: "4.25.8"},  # CVE-2025-4565 (per major line)
    "starlette": "0.49.1",  # CVE-2024-47874, CVE-2025-54121, CVE-2025-62727
    "h11": "0.16.0",  # CVE-2025-43859
    "uvicorn": "0.11.7",  # CVE-2020-7694, CVE-2020-7695
    "fastapi": "0.109.1",  # CVE-2024-24762
    "duckdb": "1.1.0",  # CVE-2024-41672
    "pyarrow": "14.0.1",  # CVE-2023-47248
    "urllib3": "2.5.0",  # CVE-2025-50181, CVE-2025-50182
    "idna": "3.7",  # CVE-2024-3651
}


@pytest.mark.parametrize("package", sorted(FIXED_IN))
def test_installed_dependencies_are_past_known_cves(package: str) -> None:
    """S11 (offline part): each installed dependency is at or past the release fixing its
    known CVEs; pip-audit against the live advisory database needs the network (nightly)."""
    installed = Version(version(package))
    floor = FIXED_IN[package]
    if isinstance(floor, dict):
        floor = floor.get(installed.major, "0")
    assert installed >= Version(floor), f"{package} {installed} < {floor}"


def test_the_agent_process_takes_short_gil_turns(tmp_path: Path) -> None:
    """The agent sets its GIL switch interval (DuckDB's calls wait out other threads' turns:
    docs/benchmarks.md, "the GIL's turn"), read from the real process at its exit by a
    sitecustomize hook."""
    hook, seen = tmp_path / "hook", tmp_path / "interval.txt"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(seen)!r}, 'w').write(repr(sys.getswitchinterval())))\n")
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    live = launch_agent(tmp_path, env={"PYTHONPATH": path})
    assert live.stop() == 0
    assert float(seen.read_text()) == GIL_SWITCH_INTERVAL_S != sys.getswitchinterval()
