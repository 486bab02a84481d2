"""agent/store/logs.py, and exception logs in the detector window, against a real DuckDB."""

from __future__ import annotations

from strata.agent.model import LogRecord
from strata.agent.store import spans as q
from strata.agent.store.db import DuckDBStore
from strata.agent.store.logs import trace_logs

from tests.agent.store.rows import MIN, T0, TRACE_A, TRACE_B, S, column_rows, span, write


def log(span_id: str | None, t_s: float, *, trace: str | None = TRACE_A, **kw: object
        ) -> LogRecord:
    return LogRecord(time_unix_nano=T0 + int(t_s * S), service="svc", trace_id=trace,
                     span_id=span_id, **kw)  # type: ignore[arg-type]


def test_trace_logs_in_time_order_decoded_and_once(store: DuckDBStore) -> None:
    choice = log("m1", 2, event_name="gen_ai.choice", severity_number=9, severity_text="INFO",
                 body="[redacted len=5 sha256=ab]", attributes={"gen_ai.system": "openai"})
    failure = log("m1", 1, error_type="ValueError", attributes={"exception.type": "ValueError"})
    event = log("m2", 3, event_name="retry", span_event=True)
    other_trace = log("z", 1, trace=TRACE_B)
    store.write_batch(logs=[choice, failure, event, other_trace], received_ns=5)
    store.write_batch(logs=[choice], received_ns=6)  # a client resent a committed batch
    assert trace_logs(store.cursor(), TRACE_A) == [
        {"time_ns": T0 + S, "span_id": "m1", "service": "svc", "severity_number": 0,
         "severity_text": None, "event_name": None, "error_type": "ValueError", "body": None,
         "attributes": {"exception.type": "ValueError"}, "span_event": False},
        {"time_ns": T0 + 2 * S, "span_id": "m1", "service": "svc", "severity_number": 9,
         "severity_text": "INFO", "event_name": "gen_ai.choice", "error_type": None,
         "body": "[redacted len=5 sha256=ab]", "attributes": {"gen_ai.system": "openai"},
         "span_event": False},
        {"time_ns": T0 + 3 * S, "span_id": "m2", "service": "svc", "severity_number": 0,
         "severity_text": None, "event_name": "retry", "error_type": None, "body": None,
         "attributes": {}, "span_event": True},
    ]
    assert store.counts()["logs"] == 5
    assert store.purge_older_than(6)["logs"] == 4


def test_an_exception_log_fails_its_span_in_the_window(store: DuckDBStore) -> None:
    """The span's status is ok; its exception log counts it as an error (and out of the
    latency quantiles). An exception *event* of a span, or a log of no span, does not."""
    write(store, [span("m1", 1, 3, operation="chat"), span("m2", 5, 9, operation="chat"),
                  span("m3", 10, 11, operation="chat")])
    store.write_batch(logs=[
        log("m1", 2, error_type="TimeoutError"),
        log("m2", 6, error_type="ValueError", span_event=True),
        log(None, 7, trace=None, error_type="KeyError"),
    ])
    cols = q.span_bucket_stats(store.cursor(), start_ns=T0, end_ns=T0 + MIN, bucket_ns=MIN,
                               sep="|")
    assert column_rows(cols) == [(T0, "svc|model|chat|", 3, 1, 2.5, 3.85, 0, 0, 0, None, 0)]
