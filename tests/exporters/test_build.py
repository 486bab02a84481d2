"""exporters/build: the exporters a real strata.toml turns into, built stopped."""

from __future__ import annotations

import threading
from pathlib import Path

from strata.agent.config import Settings, load
from strata.exporters.build import build_exporters
from strata.exporters.otlp_forward import OTLPForwarder
from strata.exporters.webhook import WebhookExporter

CONFIG = """
[forward]
endpoint = "http://127.0.0.1:4318"

[[webhook]]
url = "http://127.0.0.1:9999/hook"
format = "slack"
"""


def settings(tmp_path: Path, text: str = CONFIG) -> Settings:
    path = tmp_path / "strata.toml"
    path.write_text(text)
    return load(path, {}, db=str(tmp_path / "agent.duckdb"))


def test_exporters_are_built_stopped_from_the_config(tmp_path: Path) -> None:
    before = threading.active_count()
    exporters = build_exporters(settings(tmp_path), price=lambda spans: [])
    try:
        assert isinstance(exporters.forwarder, OTLPForwarder)
        assert exporters.forwarder.urls[b"T"] == "http://127.0.0.1:4318/v1/traces"
        assert (tmp_path / "forward-queue").is_dir()  # default: next to the database
        (hook,) = exporters.webhooks
        assert isinstance(hook, WebhookExporter)
        assert (hook.url, hook.format) == ("http://127.0.0.1:9999/hook", "slack")
        assert exporters.records == (exporters.forwarder,)
        assert exporters.incidents == (hook,)
        assert exporters.all == (exporters.forwarder, hook)
        assert threading.active_count() == before  # nothing runs before the agent starts
    finally:
        for exporter in exporters.all:
            exporter.shutdown()


def test_no_exporters_without_config(tmp_path: Path) -> None:
    exporters = build_exporters(settings(tmp_path, ""), price=lambda spans: [])
    assert exporters.all == ()
