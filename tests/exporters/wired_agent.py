"""Test-only launcher: `strata agent` with the issue-7 wiring applied, until runner.py has it.

``python -m tests.exporters.wired_agent --config strata.toml --db ... --otlp-port ...
--api-port ...`` runs the same server as ``strata.agent.cli.app agent``. When ``agent/runner.py``
already builds the forwarder (the lead's wiring), it simply runs ``strata.agent.cli.app``;
otherwise it
runs ``WiredAgent``, which applies the wiring proposed in the issue-7 report: forwarder and
webhooks built from settings, ``enqueue`` in ``after_commit``, shutdown in ``close``, and the
``/metrics`` router. ``[forward] initial_backoff`` / ``max_backoff`` are read from the file
(the keys proposed for ``agent/config.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WIRED = "OTLPForwarder" in (REPO / "agent" / "runner.py").read_text(encoding="utf-8")


def forward_timing(config: str | None) -> dict[str, float]:
    from strata.agent.config import parse_duration_s

    if not config:
        return {}
    with open(config, "rb") as handle:
        table = tomllib.load(handle).get("forward", {})
    out = {}
    for key in ("initial_backoff", "max_backoff"):
        if key in table:
            out[f"{key}_s"] = parse_duration_s(table[key], f"[forward] {key}")
    return out


def run_shim(args: argparse.Namespace) -> None:
    import uvicorn
    from strata.agent.api import metrics_endpoint
    from strata.agent.api.app import create_app
    from strata.agent.config import Settings, load
    from strata.agent.ingest.otlp_codec import DecodeResult
    from strata.agent.runner import Agent
    from strata.agent.server import bind, check_exposure
    from strata.exporters.otlp_forward import OTLPForwarder
    from strata.exporters.webhook import WebhookExporter

    timing = forward_timing(args.config)

    class WiredAgent(Agent):
        def __init__(self, settings: Settings) -> None:
            super().__init__(settings)
            self.forwarder: OTLPForwarder | None = None
            if settings.forward_endpoint:
                queue_dir = settings.forward_queue_dir or str(
                    Path(settings.db).parent / "forward-queue")
                self.forwarder = OTLPForwarder(
                    settings.forward_endpoint, queue_dir,
                    max_queue_bytes=settings.forward_max_queue_bytes,
                    price=self.price_at_ingest, start=False,
                    initial_backoff_s=timing.get("initial_backoff_s", 1.0),
                    max_backoff_s=timing.get("max_backoff_s", 30.0),
                )
            self.webhooks = tuple(WebhookExporter(w.url, format=w.format, start=False)
                                  for w in settings.webhooks)

        def start(self) -> None:
            super().start()
            if self.forwarder is not None:
                self.forwarder.start()
            for hook in self.webhooks:
                hook.start()

        def after_commit(self, result: DecodeResult) -> None:
            if self.forwarder is not None:
                self.forwarder.enqueue(result)

        def close(self) -> None:
            super().close()
            if self.forwarder is not None:
                self.forwarder.shutdown()
            for hook in self.webhooks:
                hook.shutdown()

    settings = load(args.config, os.environ, db=args.db, otlp_port=args.otlp_port,
                    api_port=args.api_port)
    check_exposure(settings)
    otlp_sock, api_sock = bind(settings.host, settings.otlp_port), bind(settings.host,
                                                                         settings.api_port)
    agent = WiredAgent(settings)
    agent.otlp_ports.add(otlp_sock.getsockname()[1])
    agent.api_ports.add(api_sock.getsockname()[1])
    app = create_app(agent)
    app.include_router(metrics_endpoint.build_router(agent))
    config: Any = uvicorn.Config(app, log_level="warning", access_log=False,
                                 timeout_graceful_shutdown=10, lifespan="on")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run(sockets=[otlp_sock, api_sock])


def main() -> None:
    if WIRED:
        from strata.agent.cli.app import main as cli_main

        sys.argv = [sys.argv[0], "agent", *sys.argv[1:]]
        cli_main()
        return
    parser = argparse.ArgumentParser()
    for flag in ("--config", "--db", "--log-level"):
        parser.add_argument(flag)
    parser.add_argument("--otlp-port", type=int)
    parser.add_argument("--api-port", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=(args.log_level or "info").upper())
    run_shim(args)


if __name__ == "__main__":
    main()
