"""ChangeTracker: deployments inferred from versions and models as spans arrive."""

from __future__ import annotations

import random

from strata.agent.ingest.changes import ChangeTracker, _Columns
from strata.agent.model import Deployment

MIN = 60 * 10**9


def spans(minutes: int, per_minute: int, pick: object, service: str = "rag-api"
          ) -> list[list[_Columns]]:
    """One batch a minute; ``pick(minute, rng)`` gives each span's (version, model)."""
    rng = random.Random(7)
    batches = []
    for m in range(minutes):
        batch = []
        for i in range(per_minute):
            version, model = pick(m, rng)  # type: ignore[operator]
            batch.append(_Columns(service, version, "chat", model,
                                  m * MIN + i * (MIN // per_minute)))
        batches.append(batch)
    return batches


def observed(batches: list[list[_Columns]], tracker: ChangeTracker | None = None
             ) -> list[Deployment]:
    tracker = tracker or ChangeTracker()
    return [d for batch in batches for d in tracker.observe(batch)]


def summary(changes: list[Deployment]) -> list[tuple[int, str | None, str | None, str | None,
                                                     str | None]]:
    return [(d.time_unix_nano // MIN, d.previous_version, d.version, d.previous_model, d.model)
            for d in changes]


def test_a_router_between_two_models_is_one_change_not_one_every_ten_minutes() -> None:
    """Requests choosing gpt-4o or gpt-4o-mini at random for an hour (a router, a fallback):
    the second model's first appearance is the only model change. Before, each time the
    current model had held for ``settle_ns`` the other one read as a rollback: 6 in an hour."""
    batches = spans(60, 10, lambda m, rng: ("1.0", rng.choice(["gpt-4o", "gpt-4o-mini"])))
    models = [c for c in summary(observed(batches)) if c[4] is not None]
    assert len(models) == 1, models


def test_a_canary_beside_the_stable_version_is_one_deploy() -> None:
    """One span in ten on 2.0 for an hour beside 1.0: the canary's start is a deploy; 1.0
    still serving is no rollback, and 2.0 still serving no re-deploy."""
    batches = spans(60, 10, lambda m, rng: ("2.0" if rng.random() < 0.1 and m >= 5 else "1.0",
                                             None))
    versions = summary(observed(batches))
    assert [(v[1], v[2]) for v in versions] == [(None, "1.0"), ("1.0", "2.0")], versions


def test_a_rollback_after_the_old_version_was_gone_counts() -> None:
    """1.0 for 10 minutes, a rolling deploy to 2.0 (both for 3 minutes), 2.0 alone until
    minute 30, then back to 1.0: three deploys, the rollback at minute 30."""
    def pick(m: int, rng: random.Random) -> tuple[str, None]:
        if m < 10:
            return "1.0", None
        if m < 13:
            return rng.choice(["1.0", "2.0"]), None
        return ("2.0" if m < 30 else "1.0"), None

    versions = summary(observed(spans(45, 10, pick)))
    assert [(v[0], v[1], v[2]) for v in versions] == [
        (0, None, "1.0"), (10, "1.0", "2.0"), (30, "2.0", "1.0")], versions


def test_a_quick_rollback_counts_once_the_new_version_has_held_the_settle_time() -> None:
    """2.0 replaced 1.0 at minute 5 and 1.0 came back at minute 10: within ``settle_ns`` of
    the deploy that is not yet a rollback (it could be a rolling deploy's stragglers); at
    minute 15, with 1.0 still serving alone, it is."""
    versions = summary(observed(spans(20, 10, lambda m, rng: (
        "1.0" if m < 5 or m >= 10 else "2.0", None))))
    assert [(v[0], v[1], v[2]) for v in versions] == [
        (0, None, "1.0"), (5, "1.0", "2.0"), (15, "2.0", "1.0")], versions


def test_an_undone_batch_finds_its_change_again() -> None:
    """A batch whose commit failed is undone: the same spans find the same deploy again,
    and the spans seen before it are still the current state."""
    tracker = ChangeTracker()
    before = spans(12, 10, lambda m, rng: ("1.0", None))
    observed(before, tracker)
    deploy = [_Columns("rag-api", "2.0", "chat", None, 12 * MIN)]
    assert [d.version for d in tracker.observe(deploy)] == ["2.0"]
    tracker.undo()
    assert [d.version for d in tracker.observe(deploy)] == ["2.0"]
    assert tracker.observe([_Columns("rag-api", "2.0", "chat", None, 13 * MIN)]) == []
