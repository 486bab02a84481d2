"""Fuzzing the OTLP decode paths in CI: a few thousand seeded mutations (RELIABILITY I8).

The long run (an hour per target, nightly) is ``benchmarks/fuzz.py --minutes 60``.
"""

from __future__ import annotations

from tests.agent.fuzz_otlp import LIMIT, fuzz
from tests.waiting import loose


def test_seeded_mutations_never_crash_hang_or_balloon() -> None:
    """I8: 3,000 mutated protobuf, JSON and gzip bodies: only DecodeError/413-style
    rejections, none over 1 s, no allocation over 2x the body limit."""
    report = fuzz(seed=20261122, iterations=3000, max_seconds=loose(1.0))
    assert report.crashes == []
    assert report.inputs == 3000
    assert report.rejected > 300  # the mutations do break things
    assert report.slowest_s <= loose(1.0)
    assert report.peak_bytes <= 2 * LIMIT
