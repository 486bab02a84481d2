"""One interface, two drivers: chdb (``chdb:DIR``, ClickHouse's engine in-process) and a
ClickHouse server over HTTP(S) (``clickhouse-connect``). Both run the same SQL text with
server-side parameters (``{name:Type}``); inserts go through each driver's columnar path
(Arrow), so neither formats values into SQL.

Every failure surfaces as ``ClickHouseError`` (a ``StoreError``) with the reason, and the
HTTP driver bounds connect and query time, so a ClickHouse that is down or slow is an error
the caller can answer (the hub's API: 503), never a hang.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
from strata.agent.errors import StoreError

Params = dict[str, Any]


# Server error codes that mean "this data or statement is wrong": resending cannot help.
# Anything else (unreachable, timeouts, overload, too many parts) is worth a retry.
_BAD_DATA_CODES = frozenset({6, 16, 26, 27, 38, 41, 43, 47, 53, 62, 69, 70, 72, 117, 130})
_CODE = re.compile(r"Code: (\d+)\.")


class ClickHouseError(StoreError):
    """ClickHouse refused a statement, is unreachable, or did not answer in time."""

    @property
    def retryable(self) -> bool:
        """False when ClickHouse refused the statement or its data (a syntax, type or parse
        error): the same insert would fail again."""
        found = _CODE.search(str(self))
        return found is None or int(found.group(1)) not in _BAD_DATA_CODES


class Engine(Protocol):
    """What the ClickHouse store and forwarder need of a connection."""

    database: str

    def command(self, sql: str, params: Params | None = None) -> None: ...
    def query(self, sql: str, params: Params | None = None) -> pa.Table: ...
    def insert(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        """Insert *data*; a repeat with the same *token* is dropped by ClickHouse (tables
        with a deduplication window: the forwarder's retries)."""
    def close(self) -> None: ...


def columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Arrow columns as numpy arrays (nulls: NaN in numbers, None in strings)."""
    return {name: _strings(column) if _is_text(column.type) else column.to_numpy()
            for name, column in zip(table.column_names, table.columns, strict=True)}


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind))


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string column (plain, or LowCardinality sent as a dictionary) as objects, one
    Python string per distinct value: a fleet's window read is millions of rows over a
    few thousand series keys, and a string object a row was seconds of a hub's pass and
    hundreds of MiB of its memory."""
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    column = column.unify_dictionaries()
    values = column.chunk(0).dictionary.to_pylist() if column.num_chunks else []
    distinct = np.array([*values, None], dtype=object)
    indices = pa.chunked_array([c.indices for c in column.chunks], column.type.index_type)
    rows: np.ndarray = distinct[indices.fill_null(len(values)).to_numpy()]
    return rows


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*cols, strict=True))


def _quoted(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    return str(int(value) if isinstance(value, bool) else value)


def param_text(value: Any) -> str:
    """A parameter in ClickHouse's text form (what the HTTP interface's ``param_x`` takes)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))
    if isinstance(value, list | tuple):
        return _quoted(list(value))
    return str(int(value) if isinstance(value, bool) else value)


def chdb_session() -> Any:
    """chdb's ``session`` module, imported here (heavy: only where chdb is used).

    Raises:
        ClickHouseError: chdb is not installed; it is an optional dependency, since it (and
            the pandas it requires) would add ~30-45 MiB to every agent and decode worker.
    """
    try:
        from chdb import session
    except ImportError:
        msg = ("chdb:DIR needs chdb, an optional dependency: "
               "pip install 'strata-agent[chdb]'")
        raise ClickHouseError(msg) from None
    return session


class ChdbEngine:
    """ClickHouse's engine in this process, its data in *directory*.

    chdb sessions are not thread-safe: statements are serialised on one lock.
    """

    def __init__(self, directory: str | Path, database: str = "otel") -> None:
        session = chdb_session()
        self.database = database
        Path(directory).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._closed = False
        new_session: Any = session.Session  # chdb ships no type hints
        try:
            self._session = new_session(str(directory))
            self._session.query(f"CREATE DATABASE IF NOT EXISTS {_name(database)}")
            self._session.query(f"USE {_name(database)}")
        except Exception as exc:
            msg = f"cannot open chdb at {directory}: {exc}"
            raise ClickHouseError(msg) from exc

    def _run(self, sql: str, params: Params | None, fmt: str) -> Any:
        text = {k: param_text(v) for k, v in (params or {}).items()}
        with self._lock:
            if self._closed:
                msg = "chdb: the engine is closed"
                raise ClickHouseError(msg)
            try:
                return self._session.query(sql, fmt, params=text) if text else \
                    self._session.query(sql, fmt)
            except Exception as exc:
                msg = f"chdb: {_one_line(exc)}"
                raise ClickHouseError(msg) from exc

    def command(self, sql: str, params: Params | None = None) -> None:
        self._run(sql, params, "CSV")

    def query(self, sql: str, params: Params | None = None) -> pa.Table:
        result: pa.Table = self._run(sql, params, "ArrowTable")
        # ClickHouse's allocator keeps what a query freed for the next one; in the hub's
        # own process that is RSS the hub never uses again (a fleet pass: ~50 MiB)
        self._run("SYSTEM JEMALLOC PURGE", None, "CSV")
        _release_arrow_memory()
        return result

    def insert(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        names = ", ".join(_name(c) for c in data.column_names)
        settings = f" SETTINGS insert_deduplication_token = '{_token(token)}'" if token else ""
        # chdb reads the local variable named in Python(...)
        batch = data  # noqa: F841 - read by chdb's Python() table function
        self._run(f"INSERT INTO {_name(table)} ({names}){settings} "  # noqa: S608
                  "SELECT * FROM Python(batch)", None, "CSV")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._session.close()


class HttpEngine:
    """A ClickHouse server over HTTP(S), with bounded connect and query times."""

    def __init__(self, url: str, database: str = "otel", *, connect_timeout_s: float = 5.0,
                 query_timeout_s: float = 30.0) -> None:
        import clickhouse_connect  # only where a server is used

        parts = urlsplit(url)
        self.database = database
        self._lock = threading.Lock()  # one HTTP session per client: serialise statements
        try:
            admin = clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1", port=parts.port or 8123,
                username=parts.username or "default", password=parts.password or "",
                secure=parts.scheme == "https", connect_timeout=connect_timeout_s,
                send_receive_timeout=query_timeout_s)
            admin.command(f"CREATE DATABASE IF NOT EXISTS {_name(database)}")
            admin.close()
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1", port=parts.port or 8123,
                username=parts.username or "default", password=parts.password or "",
                database=database, secure=parts.scheme == "https",
                connect_timeout=connect_timeout_s, send_receive_timeout=query_timeout_s,
                settings={"max_execution_time": int(query_timeout_s)})
        except Exception as exc:
            msg = f"cannot reach ClickHouse at {parts.hostname}: {exc}"
            raise ClickHouseError(msg) from exc

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                msg = f"ClickHouse {what}: {_one_line(exc)}"
                raise ClickHouseError(msg) from exc

    def command(self, sql: str, params: Params | None = None) -> None:
        self._call("command", self._client.command, sql, parameters=params or None)

    def query(self, sql: str, params: Params | None = None) -> pa.Table:
        result: pa.Table = self._call("query", self._client.query_arrow, sql,
                                      parameters=params or None)
        _release_arrow_memory()
        return result

    def insert(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        settings = {"insert_deduplication_token": _token(token)} if token else None
        self._call("insert", self._client.insert_arrow, table, data, settings=settings)

    def close(self) -> None:
        self._client.close()


def _release_arrow_memory() -> None:
    """Hand back what the previous read's Arrow conversions freed: Arrow's pool keeps it
    otherwise, and from one analysis pass to the next it grows (a fleet pass: ~100 MiB)."""
    pa.default_memory_pool().release_unused()


def _token(token: str | None) -> str:
    if token is None or not re.fullmatch(r"[A-Za-z0-9:._-]{1,200}", token):
        msg = f"not a deduplication token: {token!r}"
        raise ClickHouseError(msg)
    return token


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:500]


def _name(identifier: str) -> str:
    """A quoted identifier; names come from settings, never from requests."""
    if not identifier.replace("_", "").isalnum():
        msg = f"not a plain ClickHouse name: {identifier!r}"
        raise ClickHouseError(msg)
    return f"`{identifier}`"


def open_engine(target: str, database: str = "otel") -> Engine:
    """``chdb:DIR`` (embedded) or ``http(s)://[user:pass@]host:port`` (a server)."""
    if target.startswith("chdb:"):
        return ChdbEngine(target.removeprefix("chdb:"), database)
    if target.startswith(("http://", "https://")):
        return HttpEngine(target, database)
    msg = f"--clickhouse must be chdb:DIR or http(s)://host:port, not {target!r}"
    raise ClickHouseError(msg)
