"""Changes: the deployments of a service, merged per instant (version and model).

The deploy detector (``strata.analytics.detectors.deploys``) judges each change; root cause
and suggestions name it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strata.agent.model import Deployment


@dataclass(frozen=True, slots=True)
class Change:
    """Deployment records of one service at one instant, merged (version and model)."""

    service: str
    time_ns: int
    version: str | None
    previous_version: str | None
    model: str | None
    previous_model: str | None
    source: str

    @property
    def signal(self) -> str:
        return "deployment" if self.previous_version or self.source == "explicit" \
            else "model_change"

    def describe(self) -> str:
        parts = []
        if self.previous_version and self.version:
            parts.append(f"{self.previous_version} -> {self.version}")
        if self.previous_model and self.model:
            parts.append(f"model {self.previous_model} -> {self.model}")
        return f"{self.service} " + (", ".join(parts) or (self.version or "deploy"))


def merge_changes(deployments: Sequence[Deployment], bucket_ns: int) -> list[Change]:
    """Merge a service's version and model records in the same bucket into one Change;
    first sightings (no previous version or model, not explicit) are not changes."""
    merged: dict[tuple[str, int], Change] = {}
    for d in sorted(deployments, key=lambda d: (d.time_unix_nano, d.service, d.source)):
        if d.previous_version is None and d.previous_model is None and d.source != "explicit":
            continue
        key = (d.service, d.time_unix_nano // bucket_ns)
        old = merged.get(key)
        if old is None:
            merged[key] = Change(d.service, d.time_unix_nano, d.version, d.previous_version,
                                 d.model, d.previous_model, d.source)
        else:
            merged[key] = Change(
                old.service, min(old.time_ns, d.time_unix_nano), old.version or d.version,
                old.previous_version or d.previous_version, old.model or d.model,
                old.previous_model or d.previous_model,
                "service.version" if "service.version" in (old.source, d.source) else old.source,
            )
    return list(merged.values())
