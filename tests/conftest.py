"""Shared fixtures: a real DuckDB store in tmp_path and a real agent process on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from strata.agent.store.db import DuckDBStore

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "strata.duckdb")
    yield store
    store.close()


@dataclass
class LiveAgent:
    """A real `strata agent` process."""

    process: subprocess.Popen[bytes]
    db: Path
    otlp_endpoint: str
    api_url: str
    log: Path
    env: dict[str, str]
    args: list[str]

    def get(self, path: str, **params: object) -> httpx.Response:
        return httpx.get(self.api_url + path, params=params, timeout=30)  # type: ignore[arg-type]

    def post(self, path: str, json: object = None) -> httpx.Response:
        return httpx.post(self.api_url + path, json=json, timeout=60)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def restart(self) -> None:
        self.process = start_process(self.args, self.env, self.log)
        wait_ready(self.api_url, self.process, self.log)


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(api_url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float = 30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(api_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a readiness endpoint with a deadline, not a fixed wait
    process.kill()
    process.wait(10)
    raise RuntimeError(f"agent not ready in {deadline_s}s: {log.read_text()[-2000:]}")


def launch_agent(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> LiveAgent:
    otlp, api = free_port(), free_port()
    db = tmp_path / "agent.duckdb"
    args = [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db),
            "--otlp-port", str(otlp), "--api-port", str(api), *extra]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    # Local collectors off unless a test asks: their samples would blur exact counts.
    full_env.update({"STRATA_GPU_ENABLED": "false", "STRATA_HOST_ENABLED": "false"})
    full_env.update(env or {})
    log = tmp_path / "agent.log"
    process = start_process(args, full_env, log)
    live = LiveAgent(process, db, f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{api}", log,
                     full_env, args)
    wait_ready(live.api_url, process, log)
    return live


@pytest.fixture(name="live_agent")
def live_agent_fixture(tmp_path: Path) -> Iterator[LiveAgent]:
    live = launch_agent(tmp_path)
    yield live
    if live.process.poll() is None:
        live.process.kill()
        live.process.wait(10)


def ensure_apt_binary(binary: str, package: str) -> str:
    """*binary* from PATH, apt-installing *package* on demand (CI runs on fresh machines
    with the registries reachable); skips, saying why, when that is impossible."""
    import shutil

    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip(f"{binary} not on PATH and not root: cannot apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=600, check=False).returncode:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600,
                       check=False)
        result = subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
        if result.returncode:
            pytest.skip(f"apt-get install {package} failed: {result.stderr.decode()[-300:]}")
    found = shutil.which(binary)
    if not found:
        pytest.skip(f"{binary} not on PATH after apt-get install {package}")
    return found
