"""GET /api/v1/services/{service}/timeline: the layers' key signals side by side.

For one service over ``[since, until)`` in steps of ``step``: its own request, latency,
error, token and cost series (from spans), and the series of the GPUs, serving endpoints
and vector-DB shards its spans ran against (the same matching rules as trace correlation,
``strata.analytics.correlate``). All series share one time axis (``times``; null where a step has
no data). ``moved`` ranks the series by the change of their mean between the first and
second half of the range: "latency went up: what else moved?".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, HTTPException, Query
from strata.agent.api.render import count_query, parse_duration_ns, rfc3339, time_range
from strata.agent.store.seam import report_reads
from strata.agent.units import HOUR_NS, NS_PER_S
from strata.analytics.correlate import (
    COUNTER_SIGNALS,
    correlation_hosts,
    correlation_targets,
    is_key_signal,
    rank_moves,
    sample_matches,
)

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

DEFAULT_RANGE_NS: Final = 6 * HOUR_NS
MAX_STEPS: Final = 2000
# (column of service_span_series, layer, signal, unit)
SPAN_SIGNALS: Final = (
    ("requests", "orchestration", "requests", "{request}"),
    ("latency_p50", "orchestration", "latency.p50", "s"),
    ("latency_p95", "orchestration", "latency.p95", "s"),
    ("error_ratio", "orchestration", "error.ratio", "1"),
    ("model_latency_p95", "model", "model.latency.p95", "s"),
    ("input_tokens", "model", "tokens.input", "{token}"),
    ("output_tokens", "model", "tokens.output", "{token}"),
    ("usd", "model", "cost", "USD"),
    ("energy_wh", "model", "energy", "Wh"),
    ("retrieval_latency_p95", "data", "retrieval.latency.p95", "s"),
)


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["timeline"])

    @router.get("/api/v1/services/{service}/timeline")
    def timeline(
        service: str,
        since: str | None = None,
        until: str | None = None,
        step: str = Query("5m"),
        top: int = count_query(10, le=100),
    ) -> dict[str, Any]:
        """The five layers' key signals for one service on one time axis (what else moved?)."""
        if since is None:
            _, until_ns = time_range(agent, None, until)
            since_ns = max(0, until_ns - DEFAULT_RANGE_NS)
        else:
            since_ns, until_ns = time_range(agent, since, until)
        step_ns = parse_duration_ns(step, "step")
        first = since_ns - since_ns % step_ns
        times = list(range(first, until_ns, step_ns))
        if len(times) > MAX_STEPS:
            raise HTTPException(400, f"more than {MAX_STEPS} steps; use a larger step")
        index = {t: i for i, t in enumerate(times)}
        reads = report_reads(agent.store)
        series: list[dict[str, Any]] = []
        span_rows = reads.service_span_series(service, since_ns=since_ns, until_ns=until_ns,
                                              step_ns=step_ns)
        for column, layer, signal, unit in SPAN_SIGNALS:
            values: list[float | None] = [None] * len(times)
            for row in span_rows:
                if row[column] is not None and row["t"] in index:
                    values[index[row["t"]]] = float(row[column])
            if any(v is not None for v in values):
                series.append({"layer": layer, "signal": signal, "unit": unit, "host": None,
                               "device": None, "source": "spans", "labels": {},
                               "values": values})
        targets = [correlation_targets(s) for s in
                   reads.service_targets(service, since_ns=since_ns, until_ns=until_ns)]
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for sample, _max, increase in reads.bucketed_samples(
            since_ns=since_ns, until_ns=until_ns, step_ns=step_ns,
            hosts=correlation_hosts(targets),
        ):
            if not is_key_signal(sample) or sample.time_unix_nano not in index:
                continue
            if not any(sample_matches(t, sample) for t in targets):
                continue
            signal = sample.canonical or sample.name
            labels = dict(sorted(sample.attributes.items()))
            key = (str(sample.layer), signal, sample.host, sample.device, sample.service,
                   tuple(labels.items()))
            entry = by_key.setdefault(key, {
                "layer": str(sample.layer), "signal": signal, "unit": sample.unit,
                "host": sample.host, "device": sample.device, "source": sample.service,
                "labels": labels, "values": [None] * len(times),
            })  # fmt: skip
            value = increase if signal in COUNTER_SIGNALS else sample.value
            entry["values"][index[sample.time_unix_nano]] = value
        series.extend(v for _, v in sorted(by_key.items(), key=lambda kv: str(kv[0])))
        moved = [
            {"layer": series[m.index]["layer"], "signal": series[m.index]["signal"],
             "host": series[m.index]["host"], "device": series[m.index]["device"],
             "before": m.before, "after": m.after, "relative_change": m.relative_change}
            for m in rank_moves([s["values"] for s in series])[:top]
        ]  # fmt: skip
        return {"service": service, "since": rfc3339(since_ns), "until": rfc3339(until_ns),
                "step_s": step_ns / NS_PER_S, "times": [rfc3339(t) for t in times],
                "series": series, "moved": moved}

    return router
