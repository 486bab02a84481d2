"""Open the agent's store, recovering from a corrupt WAL or database file (RELIABILITY D4).

DuckDB refuses to open a file whose WAL has a bad checksum, or whose header blocks are
corrupt; an agent that simply exits would then crash-loop under its supervisor. Instead:

- a corrupt WAL is copied to ``quarantine/`` and the live WAL is cut at the first bad
  entry, so its valid prefix is replayed (the whole WAL is moved aside if that fails too);
- a corrupt database file is moved to ``quarantine/`` with its WAL, and a fresh store starts.

Nothing is deleted: the evidence stays in ``quarantine/`` next to the database. Each
recovery is recorded as a ``store_recovered`` incident (it shows in the API and in
``strata_incidents``) and logged.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
from strata.agent.model import Incident, IncidentEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 3
_WAL_POSITION = re.compile(r"Corrupt WAL file: entry at byte position (\d+)")


@dataclass(frozen=True, slots=True)
class Recovery:
    """One repair made before the store would open."""

    time_ns: int
    action: str  # "wal_truncated" | "wal_quarantined" | "db_quarantined"
    detail: str
    quarantined: Path


def _is_wal_error(message: str) -> bool:
    return "Corrupt WAL file" in message or "replaying WAL" in message


def _is_corrupt_db(message: str) -> bool:
    return "Corrupt database file" in message or "not a valid DuckDB database" in message


def _quarantine(db: Path, source: Path, now_ns: int, *, copy: bool) -> Path:
    folder = db.parent / "quarantine"
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / f"{now_ns}-{source.name}"
    if copy:
        shutil.copy2(source, target)
    else:
        source.replace(target)
    return target


def repair(db: Path, error: str, now_ns: int) -> Recovery | None:
    """Repair *db* after it failed to open with *error*; None when this is not corruption."""
    wal = db.with_name(db.name + ".wal")
    if _is_wal_error(error) and wal.exists():
        match = _WAL_POSITION.search(error)
        if match and 0 < int(match.group(1)) < wal.stat().st_size:
            position = int(match.group(1))
            saved = _quarantine(db, wal, now_ns, copy=True)
            with wal.open("r+b") as handle:
                handle.truncate(position)
            return Recovery(now_ns, "wal_truncated",
                            f"WAL cut at byte {position} (bad checksum); replayed the prefix",
                            saved)
        saved = _quarantine(db, wal, now_ns, copy=False)
        return Recovery(now_ns, "wal_quarantined", "WAL unreadable; moved aside", saved)
    if _is_corrupt_db(error) and db.exists():
        saved = _quarantine(db, db, now_ns, copy=False)
        if wal.exists():
            _quarantine(db, wal, now_ns, copy=False)
        return Recovery(now_ns, "db_quarantined", "database file corrupt; started fresh", saved)
    return None


def open_with_recovery(
    db: Path, open_store: Callable[[], T], *, clock: Callable[[], int] = time.time_ns
) -> tuple[T, list[Recovery]]:
    """Call *open_store*; on corruption repair the files and try again (at most 3 times).

    Raises:
        duckdb.Error: the store still cannot be opened, or failed for another reason.
    """
    recoveries: list[Recovery] = []
    while True:
        try:
            return open_store(), recoveries
        except duckdb.Error as exc:
            message = str(exc)
            recovery = repair(db, message, clock()) if len(recoveries) < MAX_ATTEMPTS else None
            if recovery is None:
                raise
            logger.error("store %s did not open (%s); %s, evidence kept in %s", db,  # noqa: TRY400
                         message.splitlines()[0][:300], recovery.detail, recovery.quarantined)
            recoveries.append(recovery)


def recovery_incident(recovery: Recovery, host: str | None) -> Incident:
    """The ``store_recovered`` incident recording *recovery*."""
    summary = f"store recovered at startup: {recovery.detail} (evidence: {recovery.quarantined})"
    return Incident(
        id=f"store_recovered-{recovery.time_ns}", kind="store_recovered", layer="infrastructure",
        service="strata-agent", host=host, status="open", severity="warning",
        started_at_ns=recovery.time_ns, detected_at_ns=recovery.time_ns, summary=summary,
        evidence=(), suspected_cause=None, suggestion=None,
        events=(IncidentEvent(recovery.time_ns, "opened", recovery.action),),
    )
