"""QdrantTelemetryCollector: per-shard segment detail from Qdrant's ``/telemetry``.

Qdrant's /metrics has no per-segment series; ``GET /telemetry?details_level=4`` lists each
local shard's segments (``result.collections.collections[].shards[].local.segments[].info``).
Per shard (``device = <collection>/<shard id>``): ``qdrant.shard.segments`` (segment count),
``qdrant.shard.points``, and the derived ``vectordb.shard.entries_per_segment`` (points /
segments). Per segment: ``qdrant.segment.points`` and ``qdrant.segment.size`` (disk bytes),
with ``segment`` (uuid) and ``segment_type`` labels. Remote replicas are not reported here
(their own node reports them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from strata.agent.errors import CollectError
from strata.agent.model import Layer, Sample
from strata.collectors.scrape import fetch_body

__all__ = ["QdrantTelemetryCollector"]

DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024

_CANONICAL = {
    "qdrant.shard.segments": ("vectordb.segments", "{segment}"),
    "qdrant.shard.points": ("vectordb.rows", "{row}"),
    "qdrant.segment.points": ("vectordb.segment.entries", "{entry}"),
    "qdrant.segment.size": ("vectordb.segment.size", "By"),
    "vectordb.shard.entries_per_segment": ("vectordb.shard.entries_per_segment", "{entry}"),
    "vectordb.shard.segments": ("vectordb.shard.segments", "{segment}"),
}


class QdrantTelemetryCollector:
    """Polls one Qdrant node's ``/telemetry?details_level=4``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
        api_key: str | None = None,
        client: httpx.Client | None = None,
        host: str | None = None,
    ) -> None:
        """Args:
        name: target name (collector name ``qdrant-telemetry:<name>``).
        base_url: e.g. ``http://127.0.0.1:6333``.
        timeout_s: total request time.
        body_limit_bytes: cap on the decompressed JSON body.
        api_key: sent as ``api-key`` when the node requires one.
        client: an httpx client to reuse (the caller closes it).
        host: host of the node; default: the URL's host.
        """
        self.name = f"qdrant-telemetry:{name}"
        self.target = name
        self.url = base_url.rstrip("/") + "/telemetry?details_level=4"
        self.timeout_s = timeout_s
        self.body_limit_bytes = body_limit_bytes
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["api-key"] = api_key
        self.host = host or httpx.URL(base_url).host
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """Read the telemetry once.

        Raises:
            CollectError: node down, timeout, non-200, oversized or malformed body.
        """
        body, _ = fetch_body(
            self._client,
            self.url,
            target=self.target,
            timeout_s=self.timeout_s,
            body_limit_bytes=self.body_limit_bytes,
            headers=self._headers,
        )
        try:
            collections = json.loads(body)["result"]["collections"]["collections"]
            return [s for c in collections for s in self._collection(c, now_ns)]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CollectError(self.target, f"unexpected /telemetry shape: {exc!r}") from exc

    def close(self) -> None:
        """Close the owned HTTP client. Idempotent."""
        if self._owns_client:
            self._client.close()

    def _collection(self, coll: Mapping[str, Any], now_ns: int) -> list[Sample]:
        out: list[Sample] = []
        name = str(coll["id"])
        for shard in coll.get("shards") or []:
            local = shard.get("local")
            if not local or local.get("segments") is None:
                continue  # remote-only shard, or details_level < 4
            shard_id = str(shard["id"])
            device = f"{name}/{shard_id}"
            attrs = {"collection": name, "shard": shard_id}
            segments = [seg["info"] for seg in local["segments"] if "info" in seg]
            out.append(self._sample("qdrant.shard.segments", len(segments), now_ns, device, attrs))
            out.append(
                self._sample("vectordb.shard.segments", len(segments), now_ns, device, attrs)
            )
            points = local.get("num_points")
            if isinstance(points, int | float):
                out.append(self._sample("qdrant.shard.points", points, now_ns, device, attrs))
                if segments:
                    out.append(
                        self._sample(
                            "vectordb.shard.entries_per_segment",
                            points / len(segments),
                            now_ns,
                            device,
                            attrs,
                        )
                    )
            for info in segments:
                seg_attrs = {
                    **attrs,
                    "segment": str(info.get("uuid", "")),
                    "segment_type": str(info.get("segment_type", "")),
                }
                for key, metric in (
                    ("num_points", "qdrant.segment.points"),
                    ("disk_usage_bytes", "qdrant.segment.size"),
                ):
                    value = info.get(key)
                    if isinstance(value, int | float):
                        out.append(self._sample(metric, value, now_ns, device, seg_attrs))
        return out

    def _sample(
        self, name: str, value: float, now_ns: int, device: str, attrs: dict[str, str]
    ) -> Sample:
        canonical, unit = _CANONICAL[name]
        return Sample(
            name=name,
            value=float(value),
            unit=unit,
            layer=Layer.DATA,
            time_unix_nano=now_ns,
            attributes=attrs,
            canonical=canonical,
            host=self.host,
            device=device,
            service=self.target,
        )
