"""Storage: the DuckDB store, its schema, recovery and memory limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the decode workers import store.columns and must not load DuckDB
    import duckdb


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of *result*, read to the end: ``fetchone`` leaves the statement open on
    the thread's cursor, and an open read keeps CHECKPOINT from running once another thread
    has updated a row it could still see."""
    rows = result.fetchall()
    return rows[0] if rows else None


def meta_value(cur: duckdb.DuckDBPyConnection, key: str) -> str | None:
    """The value stored under *key* in ``meta``, or None."""
    row = first_row(cur.execute("SELECT value FROM meta WHERE key = ?", [key]))
    return None if row is None else str(row[0])


def set_meta(cur: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """Store *value* under *key* in ``meta`` (replacing any)."""
    cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
