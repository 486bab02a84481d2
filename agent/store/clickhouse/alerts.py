"""Alerts from a fleet of hub replicas: which replica sends, and what was already sent.

Every replica analyses and writes incidents, but a ``[[webhook]]`` must hear of each change
once. ClickHouse is the only shared state (no coordinator, no lock), so:

- *who sends*: each replica with webhooks records a heartbeat in ``strata_alert_senders``
  every pass; the one with the lowest id among those heard from within ``live_ns`` sends.
  When it stops, the next one takes over after ``live_ns``.
- *what to send*: the incident table, not the sender's own analysis, so changes that
  another replica's analysis wrote are sent too. The sender reads the incident versions
  written (``written_ns``, wall time) since its last scan, minus a slack for replicas'
  clocks and late inserts, and skips contents it already sent (``strata_alert_ledger``,
  by ``digest``). Two replicas writing the same new incident at once store two versions
  differing only in their stamps: one digest, one alert. The scan mark is shared
  (``strata_meta``), so a sender taking over resumes where the last one stopped.
- Operator acks and resolves are noted as sent when written (``note``): as on the agent,
  webhooks carry what analysis found (new, changed and recovered incidents, budget alerts).

A sender that dies between exporting and noting re-sends that batch once after the take-over
(at least once, not exactly once); a mark never moves past an unsent version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import pyarrow as pa
from strata.agent.model import Incident
from strata.agent.store.clickhouse.engine import Engine, rows
from strata.agent.store.incidents import INCIDENT_COLUMNS, incident_from_row, incident_row

SCAN_MARK: Final = "alerts_scanned_ns"
SLACK_NS: Final = 120 * 10**9  # replicas' clock skew plus an insert's time in flight


def digest(incident: Incident) -> str:
    """The incident's contents, without the stamps that differ between replicas writing the
    same finding (the detection time is the writer's own event-time clock)."""
    row = incident_row(replace(incident, detected_at_ns=0))
    return hashlib.sha256(json.dumps(row, default=str).encode()).hexdigest()[:32]


def note(engine: Engine, incidents: Sequence[Incident], now_ns: int) -> None:
    """Record *incidents*' contents as sent (their alert went out, or needs none)."""
    if incidents:
        engine.insert("strata_alert_ledger", pa.table({
            "incident_id": [i.id for i in incidents],
            "digest": [digest(i) for i in incidents],
            "noted_ns": [now_ns] * len(incidents)}))


class AlertLedger:
    """One replica's view of the alert state.

    Args:
        engine: the hub's ClickHouse database.
        replica: this replica's id (unique per process; the lowest live one sends).
        live_ns: how long a sender's heartbeat counts (a few analysis intervals).
        started_ns: where the first sender of a new database starts its scan.
    """

    def __init__(self, engine: Engine, replica: str, *, live_ns: int, started_ns: int) -> None:
        self._engine = engine
        self.replica = replica
        self._live_ns = live_ns
        self._started_ns = started_ns

    def is_sender(self, now_ns: int) -> bool:
        """Record this replica's heartbeat; True when it is the one that sends."""
        self._engine.insert("strata_alert_senders",
                            pa.table({"replica": [self.replica], "beat_ns": [now_ns]}))
        found = rows(self._engine.query(
            "SELECT min(replica) FROM strata_alert_senders WHERE beat_ns >= {lo:Int64}",
            {"lo": now_ns - self._live_ns}))
        return bool(found) and found[0][0] == self.replica

    def scanned_until(self) -> int:
        found = rows(self._engine.query(
            "SELECT argMax(value, set_ns), count() FROM strata_meta WHERE key = {k:String}",
            {"k": SCAN_MARK}))
        return int(found[0][0]) if found and found[0][1] else self._started_ns

    def due(self) -> list[Incident]:
        """The latest version of each incident written since the scan mark (less the slack)
        whose contents were not sent yet, oldest write first."""
        written = rows(self._engine.query(
            f"SELECT {INCIDENT_COLUMNS} FROM strata_incidents FINAL "  # noqa: S608 - module SQL
            "WHERE written_ns >= {lo:Int64} ORDER BY written_ns, id",
            {"lo": self.scanned_until() - SLACK_NS}))
        incidents = [incident_from_row(r) for r in written]
        if not incidents:
            return []
        sent = {(str(i), str(d)) for i, d in rows(self._engine.query(
            "SELECT incident_id, digest FROM strata_alert_ledger "
            "WHERE incident_id IN {ids:Array(String)}", {"ids": [i.id for i in incidents]}))}
        return [i for i in incidents if (i.id, digest(i)) not in sent]

    def sent(self, incidents: Sequence[Incident], *, scanned_ns: int) -> None:
        """Note *incidents* as sent and move the scan mark to *scanned_ns* (when the scan
        that found them began)."""
        note(self._engine, incidents, scanned_ns)
        self._engine.insert("strata_meta", pa.table({
            "key": [SCAN_MARK], "value": [str(scanned_ns)], "set_ns": [scanned_ns]}))
