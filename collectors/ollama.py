"""OllamaCollector: Ollama has no /metrics, so read ``GET /api/ps`` and time the request.

Per loaded model: ``ollama.model.size`` and ``ollama.model.size_vram`` (bytes); per target:
``ollama.models.loaded`` and ``ollama.api.response_time`` (seconds for the /api/ps round
trip, a liveness/latency probe). Token timings (``eval_duration`` ...) exist only in
generate/chat responses, which Strata does not issue; apps report them as spans instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import httpx
from strata.agent.errors import CollectError
from strata.agent.model import Layer, Sample
from strata.collectors.scrape import fetch_body

__all__ = ["OllamaCollector"]

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024


class OllamaCollector:
    """Polls one Ollama server's ``/api/ps``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
        client: httpx.Client | None = None,
        host: str | None = None,
    ) -> None:
        """Args:
        name: target name (collector name ``ollama:<name>``; ``service`` of the samples).
        base_url: e.g. ``http://127.0.0.1:11434``.
        timeout_s: total request time.
        body_limit_bytes: cap on the decompressed JSON body.
        client: an httpx client to reuse (the caller closes it).
        host: host of the server; default: the URL's host.
        """
        self.name = f"ollama:{name}"
        self.target = name
        self.url = base_url.rstrip("/") + "/api/ps"
        self.timeout_s = timeout_s
        self.body_limit_bytes = body_limit_bytes
        self.host = host or httpx.URL(base_url).host
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """Read /api/ps once.

        Raises:
            CollectError: server down, timeout, non-200, oversized or non-JSON body.
        """
        begin = time.perf_counter()
        body, _ = fetch_body(
            self._client,
            self.url,
            target=self.target,
            timeout_s=self.timeout_s,
            body_limit_bytes=self.body_limit_bytes,
            headers={"Accept": "application/json"},
        )
        elapsed = time.perf_counter() - begin
        try:
            doc = json.loads(body)
            models = doc["models"] or []
        except (ValueError, KeyError, TypeError) as exc:
            raise CollectError(self.target, f"/api/ps is not Ollama JSON: {exc!r}") from exc
        out = [
            self._sample("ollama.api.response_time", elapsed, "s", now_ns, {}),
            self._sample("ollama.models.loaded", float(len(models)), "{model}", now_ns, {}),
        ]
        for model in models:
            if not isinstance(model, dict):
                continue
            attrs = {"model": str(model.get("name") or model.get("model") or "")}
            for key, name in (
                ("size", "ollama.model.size"),
                ("size_vram", "ollama.model.size_vram"),
            ):
                value = model.get(key)
                if isinstance(value, int | float):
                    out.append(self._sample(name, float(value), "By", now_ns, attrs))
        return out

    def close(self) -> None:
        """Close the owned HTTP client. Idempotent."""
        if self._owns_client:
            self._client.close()

    def _sample(
        self, name: str, value: float, unit: str, now_ns: int, attrs: dict[str, str]
    ) -> Sample:
        canonical = {
            "ollama.api.response_time": "serving.api.response_time",
            "ollama.models.loaded": "serving.models.loaded",
            "ollama.model.size": "serving.model.size",
            "ollama.model.size_vram": "serving.model.vram",
        }[name]
        return Sample(
            name=name,
            value=value,
            unit=unit,
            layer=Layer.SERVING,
            time_unix_nano=now_ns,
            attributes=attrs,
            canonical=canonical,
            host=self.host,
            device=attrs.get("model") or self.target,
            service=self.target,
        )
