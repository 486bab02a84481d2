"""Score incidents against the simulator's ground truth (tests and benchmarks).

An incident matches an expected one when the kind, the service (for service incidents) or
host (for host incidents) agree and it starts between ten minutes before the injection and
its end. Each expected incident matches at most one incident. Of the rest, those an
expected incident names as a side effect (``ExpectedIncident.secondary``, starting within
its span and half an hour after) are *secondary*; the others are false incidents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from strata.agent.model import Incident
from strata.agent.simulator.scenario import ExpectedIncident
from strata.agent.units import MINUTE_NS

EARLY_NS = 10 * MINUTE_NS
START_TOLERANCE_NS = 15 * MINUTE_NS  # "incident start within 15 min of the true change"
SECONDARY_LATE_NS = 30 * MINUTE_NS


@dataclass(slots=True)
class Match:
    expected: ExpectedIncident
    incident: Incident

    @property
    def delay_ns(self) -> int:
        return self.incident.detected_at_ns - self.expected.start_ns

    @property
    def start_ok(self) -> bool:
        return abs(self.incident.started_at_ns - self.expected.start_ns) <= START_TOLERANCE_NS

    @property
    def rollback_ok(self) -> bool:
        """The suggested rollback is exactly the expected one (None when none is expected)."""
        suggestion = self.incident.suggestion
        got = None if suggestion is None else suggestion.rollback
        return got == self.expected.rollback

    @property
    def cause_ok(self) -> bool:
        cause = self.incident.suspected_cause
        return cause is not None and (cause.layer, cause.signal) == (
            self.expected.cause_layer, self.expected.cause_signal)

    @property
    def action_ok(self) -> bool:
        suggestion = self.incident.suggestion
        return suggestion is not None and suggestion.action == self.expected.action \
            and suggestion.rollback == self.expected.rollback


@dataclass(slots=True)
class Score:
    matches: list[Match] = field(default_factory=list)
    missed: list[ExpectedIncident] = field(default_factory=list)
    false: list[Incident] = field(default_factory=list)
    secondary: list[Incident] = field(default_factory=list)


def _fits(inc: Incident, exp: ExpectedIncident) -> bool:
    if inc.kind != exp.kind:
        return False
    if exp.service is not None and inc.service != exp.service:
        return False
    if exp.host is not None and inc.host != exp.host:
        return False
    return exp.start_ns - EARLY_NS <= inc.started_at_ns < exp.end_ns


def score_incidents(incidents: Sequence[Incident], expected: Sequence[ExpectedIncident]) -> Score:
    """Match *incidents* to *expected* ones (earliest start first)."""
    score = Score()
    free = sorted(incidents, key=lambda i: (i.started_at_ns, i.id))
    for exp in sorted(expected, key=lambda e: e.start_ns):
        hit = next((i for i in free if _fits(i, exp)), None)
        if hit is None:
            score.missed.append(exp)
        else:
            free.remove(hit)
            score.matches.append(Match(exp, hit))
    for inc in free:
        side = any(_side_effect(inc, exp) for exp in expected)
        (score.secondary if side else score.false).append(inc)
    return score


def _side_effect(inc: Incident, exp: ExpectedIncident) -> bool:
    if not exp.start_ns - EARLY_NS <= inc.started_at_ns < exp.end_ns + SECONDARY_LATE_NS:
        return False
    return any(kind == inc.kind and target in (inc.service, inc.host)
               for kind, target in exp.secondary)
