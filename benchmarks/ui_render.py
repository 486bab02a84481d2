"""Time to first meaningful render of the console's incident page on a month of data.

Builds (once, then reuses) a DuckDB store holding ``--days`` of simulated telemetry for
``--services`` services with the simulator's injected incidents, starts a real
``strata agent`` on it, runs ``POST /api/v1/analyze``, then opens the incident page in
headless Chromium ``--runs`` times, each in a fresh browser context (empty cache).

"First meaningful render" is the console's ``strata:rendered:incidents`` performance mark:
set once the incident's summary, cause, suggestion, evidence table and every evidence chart
are in the DOM and drawn, measured from navigation start by the browser itself.

    .venv/bin/python benchmarks/ui_render.py                  # 30 days, 20 services
    .venv/bin/python benchmarks/ui_render.py --days 2 --services 4 --runs 3   # quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import Injection, bump_minor, plan_scenario
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import PRICIER_MODEL, default_topology
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS, MINUTE_NS

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
DAY_NS = 24 * HOUR_NS


def build_store(path: Path, *, days: int, services: int, rate_per_min: float,
                seed: int) -> dict[str, object]:
    """Fill a new store at *path* with *days* of telemetry ending at the current hour."""
    topology = default_topology(services)
    # The page's service keeps the simulator's 5 requests/min (per-minute detectors need
    # traffic); the others run at *rate_per_min* to keep a month of 20 services loadable.
    target = next(s for s in topology.services if s.model in PRICIER_MODEL)
    topology = dataclasses.replace(topology, services=tuple(
        s if s.name == target.name else dataclasses.replace(s, rate_per_min=rate_per_min)
        for s in topology.services))
    end_ns = time.time_ns() // HOUR_NS * HOUR_NS
    start_ns = end_ns - days * DAY_NS
    plan = plan_scenario(topology, seed, start_ns=start_ns, warmup_ns=days * DAY_NS // 6,
                         spacing_ns=max(3 * HOUR_NS, (days * DAY_NS * 3 // 4) // 13),
                         duration_ns=3 * HOUR_NS)
    # The page under test: a deploy regression with a rollback, ten hours before the end
    # (inside the analysis look-back however the agent is configured).
    plan.append(Injection("cost_deploy", end_ns - 10 * HOUR_NS, end_ns - 6 * HOUR_NS,
                          service=target.name, old_version=target.version,
                          new_version=bump_minor(target.version), token_factor=2.5))
    simulator = Simulator(seed, start_ns=start_ns, topology=topology, injections=plan,
                          step_ns=5 * MINUTE_NS)
    store = DuckDBStore(path)
    try:
        load_batches(store, simulator.batches(end_ns), chunk=12)
        counts = store.counts()
    finally:
        store.close()
    return {"days": days, "services": services, "rate_per_min": rate_per_min,
            "busy_service": target.name,
            "end_ns": end_ns, "injections": len(plan), **counts}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_agent(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    api = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    # The loader stamps received time = event time; keep the month past default retention.
    env.update(STRATA_RETENTION_DAYS="3650", STRATA_GPU_ENABLED="false",
               STRATA_HOST_ENABLED="false", STRATA_ANALYZE_INTERVAL="1d")
    args = [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(db), "--otlp-port",
            str(free_port()), "--api-port", str(api)]
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{api}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling readiness with a deadline
    process.kill()
    raise RuntimeError("agent not ready in 120 s")


def pick_incident(incidents: list[dict[str, object]]) -> dict[str, object]:
    """A deploy regression with a rollback when there is one (the page's richest case)."""
    with_rollback = [i for i in incidents
                     if isinstance(i.get("suggestion"), dict) and i["suggestion"].get("rollback")]
    return (with_rollback or incidents)[0]


def measure(url: str, route: str, runs: int, chromium: str) -> list[dict[str, float]]:
    args = list(CHROMIUM_ARGS) + (["--no-sandbox"] if os.geteuid() == 0 else [])
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            for _ in range(runs + 1):  # the first run warms Chromium itself, not the page
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(url + "/ui/" + route)
                # The mark is set in the same task that drops aria-busy (no eval under CSP).
                page.wait_for_selector('main[data-route^="incidents/"]:not([aria-busy])',
                                       timeout=60_000)
                timing = page.evaluate("""() => {
                    const nav = performance.getEntriesByType('navigation')[0];
                    const mark = performance.getEntriesByName('strata:rendered:incidents')[0];
                    const api = performance.getEntriesByType('resource')
                        .filter(r => r.name.includes('/api/v1/'))
                        .reduce((m, r) => Math.max(m, r.responseEnd), 0);
                    const calls = performance.getEntriesByType('resource')
                        .filter(r => r.name.includes('/api/v1/'))
                        .map(r => [new URL(r.name).pathname, Math.round(r.duration)]);
                    return {render_ms: mark.startTime, dom_ms: nav.domContentLoadedEventEnd,
                            api_done_ms: api, calls,
                            charts: document.querySelectorAll(
                                '#incident-charts figure[data-drawn]').length};
                }""")
                results.append(timing)
                context.close()
        finally:
            browser.close()
    return results[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1.0, help="requests per minute per service")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--db", type=Path, default=None, help="store to build or reuse")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    opts = parser.parse_args()
    db = opts.db or REPO / "build" / "bench" / f"ui-{opts.days}d-{opts.services}s.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    meta_path = db.with_suffix(".json")
    if not db.exists():
        started = time.monotonic()
        meta = build_store(db, days=opts.days, services=opts.services, rate_per_min=opts.rate,
                           seed=opts.seed)
        meta["build_s"] = round(time.monotonic() - started, 1)
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    print(f"store: {db} {meta}")
    process, url = start_agent(db, db.with_suffix(".log"))
    try:
        started = time.monotonic()
        httpx.post(url + "/api/v1/analyze", timeout=1800).raise_for_status()
        print(f"analyze: {time.monotonic() - started:.1f} s")
        payload = httpx.get(url + "/api/v1/incidents", timeout=60).json()
        incidents = payload["incidents"] if isinstance(payload, dict) else payload
        if not incidents:
            raise SystemExit("no incidents detected: nothing to render")
        incident = pick_incident(incidents)
        print(f"{len(incidents)} incidents; rendering {incident['id']} ({incident['kind']}, "
              f"{len(incident.get('evidence') or [])} evidence signals)")
        runs = measure(url, f"#/incidents/{incident['id']}", opts.runs, opts.chromium)
    finally:
        process.terminate()
        process.wait(60)
    render = sorted(r["render_ms"] for r in runs)
    print(json.dumps(runs[:3]))
    print(f"first meaningful render over {len(render)} cold loads: median "
          f"{statistics.median(render):.0f} ms, max {render[-1]:.0f} ms "
          f"(charts drawn: {runs[0]['charts']}; API answers done by median "
          f"{statistics.median(r['api_done_ms'] for r in runs):.0f} ms)")


if __name__ == "__main__":
    main()
