"""Incidents from a simulated day: every injected fault found, decoys and clean time quiet,
analysis idempotent, replay equal to live."""

from __future__ import annotations

from pathlib import Path

import pytest
from strata.agent.analysis.analyzer import Analyzer
from strata.agent.simulator.score import score_incidents
from strata.agent.store import incidents as incident_store
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS

from tests.sim_data import START_NS, price, scenario


@pytest.fixture(name="analysed", scope="module")
def analysed_fixture(tmp_path_factory: pytest.TempPathFactory):
    sc = scenario()
    store = sc.copy(tmp_path_factory.mktemp("analysed"))
    report = Analyzer(store, price=price, lookback_ns=None).analyze()
    yield sc, store, report
    store.close()


def test_every_injected_incident_is_found_with_kind_layer_cause_and_action(analysed) -> None:
    """Each injection yields one incident of the right kind, layer, cause and suggestion."""
    sc, store, _ = analysed
    incidents = incident_store.list_incidents(store.cursor())
    score = score_incidents(incidents, sc.expected)
    assert [e.kind for e in score.missed] == []
    for match in score.matches:
        exp, inc = match.expected, match.incident
        assert inc.layer == exp.layer, inc
        assert (inc.service, inc.host) == (exp.service, exp.host), inc
        assert match.cause_ok, (exp.kind, inc.suspected_cause)
        assert match.action_ok, (exp.kind, inc.suggestion)
        assert match.delay_ns <= 10 * 60 * 1_000_000_000, (exp.kind, match.delay_ns)


def test_decoys_and_clean_periods_raise_nothing(analysed) -> None:
    """Benign deploys, traffic surges, isolated slow requests and quiet time open nothing."""
    sc, store, _ = analysed
    incidents = incident_store.list_incidents(store.cursor())
    assert score_incidents(incidents, sc.expected).false == []


def test_rollback_targets_are_exact(analysed) -> None:
    """Regressions after a deploy suggest rolling back to exactly the previous version."""
    sc, store, _ = analysed
    incidents = incident_store.list_incidents(store.cursor())
    rollbacks = sorted((i.suggestion.rollback.service, i.suggestion.rollback.from_version,
                        i.suggestion.rollback.to_version)
                       for i in incidents if i.suggestion and i.suggestion.rollback)
    expected = sorted((e.rollback.service, e.rollback.from_version, e.rollback.to_version)
                      for e in sc.expected if e.rollback)
    assert rollbacks == expected
    assert len(expected) == 2


def test_recovered_incidents_are_auto_resolved_with_a_timeline(analysed) -> None:
    """Injections end, signals recover, incidents resolve; timelines run opened..resolved."""
    _, store, report = analysed
    assert report.new
    assert all(i.status == "resolved" for i in report.new)
    for inc in report.new:
        stored = incident_store.get_incident(store.cursor(), inc.id)
        assert stored is not None
        events = [e.event for e in stored.events]
        assert events[0] == "opened"
        assert events[-1] == "resolved"
        assert stored.resolved_at_ns is not None
        assert stored.resolved_at_ns > stored.started_at_ns
        assert stored.evidence
        assert all(e.baseline != e.current for e in stored.evidence)


def test_analyze_is_idempotent(analysed) -> None:
    """A second analysis over the same data creates, changes and resolves nothing."""
    _, store, first = analysed
    before = store.counts()["incidents"]
    events = store.cursor().execute("SELECT count(*) FROM incident_events").fetchone()
    again = Analyzer(store, price=price, lookback_ns=None).analyze()
    assert (again.new, again.updated, again.resolved) == ((), (), ())
    assert store.counts()["incidents"] == before == len(first.new)
    assert store.cursor().execute("SELECT count(*) FROM incident_events").fetchone() == events


def test_replay_gives_the_incidents_that_watching_live_gave(tmp_path: Path) -> None:
    """Analysing every 20 minutes of event time as data grows equals one analysis at the end."""
    sc = scenario()
    live = sc.copy(tmp_path)
    end = START_NS + 12 * HOUR_NS
    analyzer = Analyzer(live, price=price, lookback_ns=None)
    for t in range(START_NS + 3 * HOUR_NS, end + 1, HOUR_NS // 3):
        analyzer.analyze(t)
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    replay = sc.copy(replay_dir)
    Analyzer(replay, price=price, lookback_ns=None).analyze(end)

    def state(store: DuckDBStore) -> list[tuple[object, ...]]:
        return [(i.id, i.kind, i.layer, i.service, i.host, i.status, i.started_at_ns,
                 i.detected_at_ns, i.resolved_at_ns, i.suspected_cause, i.suggestion)
                for i in incident_store.list_incidents(store.cursor())]

    assert state(live) == state(replay)
    assert len(state(live)) >= 3
    live.close()
    replay.close()


def test_operator_resolution_sticks_and_acks_survive_reanalysis(tmp_path: Path) -> None:
    """A hand-resolved incident is not reopened, and an ack is kept, by later analyses."""
    sc = scenario()
    store = sc.copy(tmp_path)
    analyzer = Analyzer(store, price=price, lookback_ns=None)
    t = START_NS + 7 * HOUR_NS + 10 * 60 * 1_000_000_000  # mid-incident: still open
    analyzer.analyze(t)
    open_ = incident_store.list_incidents(store.cursor(), status="open")
    assert open_
    first = open_[0]
    with store.transaction() as cur:
        incident_store.set_status(cur, first.id, "resolved", time_ns=t,
                                  detail=incident_store.MANUAL_RESOLVE)
    analyzer.analyze(t + 5 * 60 * 1_000_000_000)
    after = incident_store.get_incident(store.cursor(), first.id)
    assert after is not None
    assert after.status == "resolved"
    assert [e.event for e in after.events].count("reopened") == 0
    store.close()
