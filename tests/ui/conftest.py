"""Browser fixtures: Debian's Chromium driven by Playwright against a real, loaded agent.

- ``chromium_path``: the system Chromium, installed with apt-get when missing (CI runs on a
  fresh machine with registries reachable); the tests skip, saying why, only when that
  install fails. ``playwright install`` is never used (it downloads its own browser).
- ``console_agent``: one ``strata agent`` process per session, fed 20 hours of simulated
  telemetry over OTLP/HTTP and analysed once.
- ``page``: a fresh browser context per test; its screenshot is kept as a test artifact in
  ``$STRATA_UI_ARTIFACTS`` (default ``build/test-artifacts/ui``) and any uncaught page
  error fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import REPO, LiveAgent, launch_agent
from tests.ui.scenario import Scenario, send_scenario

ARTIFACTS = Path(os.environ.get("STRATA_UI_ARTIFACTS", REPO / "build" / "test-artifacts" / "ui"))
# This network refuses Chromium's background connections; keep it from trying.
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-dev-shm-usage"]
PROBE_PATH = "/api/v1/incidents/strata-ui-write-probe/ack"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    configured = os.environ.get("STRATA_CHROMIUM")
    if configured:
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def install_chromium() -> str:
    """apt-get install chromium; returns why it failed ('' on success)."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "not root and no sudo"
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run([*prefix, *command], env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        if done.returncode != 0:
            return f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}"
    return ""


@pytest.fixture(scope="session", name="chromium_path")
def chromium_path_fixture() -> str:
    path = find_chromium()
    if path is None:
        reason = install_chromium()
        path = find_chromium()
        if path is None:
            pytest.skip(f"no Chromium and it could not be installed: {reason or 'not found'}")
    return path


@pytest.fixture(scope="session", name="browser")
def browser_fixture(chromium_path: str) -> Iterator[Browser]:
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to sandbox as root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=args)
        yield browser
        browser.close()


@dataclass
class ConsoleAgent:
    live: LiveAgent
    scenario: Scenario
    incident: dict[str, Any]

    @property
    def url(self) -> str:
        return self.live.api_url + "/ui/"


@pytest.fixture(scope="session", name="console_agent")
def console_agent_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleAgent]:
    # One analysis, after all the data: a background analysis in the middle of the upload
    # (slow on a loaded machine) would judge the deploy on part of its requests.
    live = launch_agent(tmp_path_factory.mktemp("console"), env={"STRATA_ANALYZE_INTERVAL": "1h"})
    try:
        scenario = send_scenario(live.otlp_endpoint, end_ns=time.time_ns())
        live.post("/api/v1/analyze").raise_for_status()
        payload = live.get("/api/v1/incidents", service=scenario.service,
                           kind="cost_regression").json()
        incidents = payload["incidents"] if isinstance(payload, dict) else payload
        found = live.get("/api/v1/incidents", service=scenario.service).json()
        assert incidents, f"the injected cost regression was not detected: {found}"
        yield ConsoleAgent(live, scenario, incidents[0])
    finally:
        if live.process.poll() is None:
            live.stop()


def expected_status(url: str, status: int) -> bool:
    """Successes, the write probe's 404 and the 401 that asks for a token."""
    return status < 400 or (status == 404 and PROBE_PATH in url) or (
        status == 401 and "/api/v1/" in url)


@pytest.fixture(name="page")
def page_fixture(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  timezone_id="UTC", locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Failed requests are judged by the response listener (the browser also logs them).
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: None if expected_status(r.url, r.status)
            else errors.append(f"{r.status} {r.url}"))
    page.set_default_timeout(15_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", request.node.name)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    context.close()
    assert errors == [], f"errors in the page: {errors}"
