"""Shared fixtures: a real DuckDB store in tmp_path and a real agent process on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from strata.agent.store.db import DuckDBStore

from tests.waiting import responds, wait_until

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
    grpc_target: str = ""  # host:port of the OTLP/gRPC receiver

    def get(self, path: str, **params: object) -> httpx.Response:
        return httpx.get(self.api_url + path, params=params, timeout=30)  # type: ignore[arg-type]

    def post(self, path: str, json: object = None) -> httpx.Response:
        return httpx.post(self.api_url + path, json=json, timeout=60)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def restart(self, timeout_s: float = 30) -> None:
        """Start the same command again; ready within *timeout_s* or the test fails."""
        self.process = start_process(self.args, self.env, self.log)
        wait_ready(self.api_url, self.process, self.log, timeout_s)


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(api_url: str, process: subprocess.Popen[bytes], log: Path,
               timeout_s: float = 30) -> None:
    """Until ``/healthz`` answers 200; fails at once, with the log's tail, if the agent exits."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited {process.returncode}: {tail(log)}")
        return responds(api_url + "/healthz") == 200

    try:
        wait_until(ready, timeout_s, f"{api_url}/healthz")
    except AssertionError as exc:
        process.kill()
        process.wait(10)
        raise AssertionError(f"{exc}: {tail(log)}") from None


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else f"(no {log})"


def launch_agent(tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
                 timeout_s: float = 30) -> LiveAgent:
    otlp, api, grpc = free_port(), free_port(), free_port()
    db = tmp_path / "agent.duckdb"
    args = [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db),
            "--otlp-port", str(otlp), "--api-port", str(api), "--otlp-grpc-port", str(grpc),
            *extra]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    # Local collectors off unless a test asks: their samples would blur exact counts.
    full_env.update({"STRATA_GPU_ENABLED": "false", "STRATA_HOST_ENABLED": "false"})
    full_env.update(env or {})
    log = tmp_path / "agent.log"
    process = start_process(args, full_env, log)
    live = LiveAgent(process, db, f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{api}", log,
                     full_env, args, f"127.0.0.1:{grpc}")
    wait_ready(live.api_url, process, log, timeout_s)
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
