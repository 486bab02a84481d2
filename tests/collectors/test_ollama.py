"""OllamaCollector against a real HTTP server on 127.0.0.1 serving Ollama's /api/ps shape."""

from __future__ import annotations

import pytest
from strata.agent.errors import CollectError
from strata.agent.model import Layer
from strata.collectors.ollama import OllamaCollector

from tests.collectors.conftest import FixtureServer

NOW = 1_700_000_000_000_000_000


def test_running_models_become_size_and_vram_samples(fixture_server: FixtureServer) -> None:
    """tests/fixtures/ollama_ps.json: two models, one partly offloaded to system memory."""
    collector = OllamaCollector("local", fixture_server.base_url)
    samples = collector.collect(NOW)
    collector.close()
    assert collector.name == "ollama:local"
    assert fixture_server.requests[-1] == "/api/ps"
    per_model = {(s.name, s.device): s.value for s in samples if s.device != "local"}
    assert per_model == {
        ("ollama.model.size", "llama3.1:8b"): 6654289920.0,
        ("ollama.model.size_vram", "llama3.1:8b"): 6654289920.0,
        ("ollama.model.size", "qwen2.5:32b"): 22466822144.0,
        ("ollama.model.size_vram", "qwen2.5:32b"): 15032385536.0,
    }
    target = {s.name: s for s in samples if s.device == "local"}
    assert sorted(target) == ["ollama.api.response_time", "ollama.models.loaded"]
    assert target["ollama.models.loaded"].value == 2.0
    assert target["ollama.api.response_time"].unit == "s"
    assert 0 < target["ollama.api.response_time"].value < 30  # the round trip, in seconds
    for s in samples:
        assert (s.layer, s.host, s.service, s.time_unix_nano) == (
            Layer.SERVING, "127.0.0.1", "local", NOW)
        assert s.canonical is not None
        assert s.canonical.startswith("serving.")
    sizes = [s for s in samples if s.name == "ollama.model.size"]
    assert {s.unit for s in sizes} == {"By"}
    assert {s.attributes["model"] for s in sizes} == {"llama3.1:8b", "qwen2.5:32b"}


@pytest.mark.parametrize("body", [b'{"models": []}', b'{"models": null}'],
                         ids=["empty", "null"])
def test_nothing_loaded_is_zero_models(fixture_server: FixtureServer, body: bytes) -> None:
    """An idle server (Ollama sends null or an empty list) is up with 0 models loaded."""
    fixture_server.bodies["idle/api/ps"] = body
    collector = OllamaCollector("idle", fixture_server.url("/dynamic/idle"))
    samples = {s.name: s.value for s in collector.collect(NOW)}
    collector.close()
    assert set(samples) == {"ollama.api.response_time", "ollama.models.loaded"}
    assert samples["ollama.models.loaded"] == 0.0


@pytest.mark.parametrize("body", [b"<html>It works!</html>", b'{"error": "unauthorized"}'],
                         ids=["html", "no-models-key"])
def test_not_ollama_json_fails_the_collect(fixture_server: FixtureServer, body: bytes) -> None:
    fixture_server.bodies["other/api/ps"] = body
    collector = OllamaCollector("other", fixture_server.url("/dynamic/other"))
    with pytest.raises(CollectError, match="not Ollama JSON"):
        collector.collect(NOW)
    collector.close()


def test_server_down_fails_the_collect(dead_url: str) -> None:
    collector = OllamaCollector("down", dead_url.removesuffix("/metrics"), timeout_s=2)
    with pytest.raises(CollectError) as info:
        collector.collect(NOW)
    collector.close()
    assert info.value.target == "down"
