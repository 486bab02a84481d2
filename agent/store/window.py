"""Window: a read-only, event-time view over the store for detectors.

Every read aggregates in the store's engine (``strata.agent.store.seam.WindowReads``:
DuckDB or ClickHouse) and returns series aligned to the window's buckets (``bucket_ns`` wide,
aligned to the epoch so that any two windows agree on bucket boundaries). Buckets with no
data are NaN (counts are 0): missing is absent, never zero. Results are cached, so detectors
can share one window.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from strata.agent.model import Deployment
from strata.agent.store.seam import Store, WindowReads, window_reads
from strata.agent.units import MINUTE_NS

BUCKET_NS = MINUTE_NS
PriceFn = Callable[[str | None, str | None], tuple[float, float] | None]
"""(provider, model) -> (USD per 1M input tokens, USD per 1M output tokens), or None."""

_SEP = "\x1f"


def _factorize(values: Any) -> tuple[list[str], np.ndarray]:
    """The distinct strings of *values* in sorted order and each row's index among them
    (``np.unique(..., return_inverse=True)`` without a fixed-width copy of every row or a
    Python call per row: a fleet's read is 10^6 rows of ~100-character keys over a few
    thousand series, so Arrow's hash encoding finds the distinct ones)."""
    encoded = pa.array(values, pa.string()).dictionary_encode()
    names = encoded.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    ids = encoded.indices.to_numpy(zero_copy_only=False)
    return [names[i] for i in order], rank[ids]


@dataclass(frozen=True, slots=True)
class SpanSeries:
    """Per-bucket statistics of one span group.

    Model-layer spans group by service x operation whatever their model (``model`` is the
    most used one), so a model switch shows as a change of the series; other layers group by
    service x operation x span name. ``cost_usd`` is the stored cost where every span of the
    bucket has one, else the tokens priced with the window's price function, else NaN.
    """

    service: str
    layer: str
    operation: str
    model: str
    name: str
    provider: str
    count: np.ndarray  # requests per bucket
    errors: np.ndarray
    p50_s: np.ndarray  # of requests that did not fail
    p95_s: np.ndarray
    input_tokens: np.ndarray  # sums over spans reporting output tokens
    output_tokens: np.ndarray
    token_count: np.ndarray  # spans reporting output tokens
    cost_usd: np.ndarray

    @property
    def key(self) -> str:
        """Stable identity: model spans by service x operation, others also by span name."""
        if self.layer == "model":
            return f"{self.service}|{self.layer}|{self.operation}"
        return f"{self.service}|{self.layer}|{self.operation}|{self.name}"


@dataclass(frozen=True, slots=True)
class SampleSeries:
    """Per-bucket mean/max/min of one metric series (canonical x host x device x labels)."""

    canonical: str
    unit: str
    host: str | None
    device: str | None
    source: str | None  # the resource's service.name (exporter / server instance)
    labels: dict[str, str]
    mean: np.ndarray
    max: np.ndarray
    min: np.ndarray
    layer: str = ""  # set by ``all_sample_series``; the detectors know their series' layer

    @property
    def key(self) -> str:
        return _SEP.join((self.canonical, self.host or "", self.device or "", self.source or "",
                          json.dumps(self.labels, sort_keys=True)))


@dataclass(slots=True)
class _Cache:
    spans: list[SpanSeries] | None = None
    samples: dict[tuple[str, ...], list[SampleSeries]] = field(default_factory=dict)
    deployments: list[Deployment] | None = None
    dependencies: dict[str, frozenset[str]] | None = None
    rates: dict[tuple[str | None, str | None], tuple[float, float] | None] = field(
        default_factory=dict)


class Window:
    """The stored telemetry between ``start_ns`` (inclusive) and ``end_ns`` (exclusive).

    Args:
        store: the store to read (DuckDB or another ``seam.AnalysisStore``; reads only).
        start_ns: window start, rounded down to a bucket boundary.
        end_ns: window end, rounded down to a bucket boundary (a partial bucket is left out).
        bucket_ns: bucket width.
        price: prices tokens of spans that have no stored cost (None: stored cost only).
    """

    def __init__(
        self,
        store: Store,
        *,
        start_ns: int,
        end_ns: int,
        bucket_ns: int = BUCKET_NS,
        price: PriceFn | None = None,
    ) -> None:
        self.bucket_ns = bucket_ns
        self.start_ns = start_ns // bucket_ns * bucket_ns
        self.end_ns = max(self.start_ns, end_ns // bucket_ns * bucket_ns)
        self.n_buckets = (self.end_ns - self.start_ns) // bucket_ns
        self.times = self.start_ns + np.arange(self.n_buckets, dtype=np.int64) * bucket_ns
        self._reads: WindowReads = window_reads(store)
        self._price = price
        self._cache = _Cache()

    def _index(self, buckets: np.ndarray) -> np.ndarray:
        return ((buckets - self.start_ns) // self.bucket_ns).astype(np.int64)

    # -- spans ----------------------------------------------------------------------------

    def span_series(self) -> list[SpanSeries]:
        """Per-bucket request statistics of every GenAI span group in the window."""
        if self._cache.spans is None:
            self._cache.spans = self._read_spans()
        return self._cache.spans

    def _read_spans(self) -> list[SpanSeries]:
        if self.n_buckets == 0:
            return []
        cols = self._reads.span_bucket_stats(start_ns=self.start_ns,
                                            end_ns=self.end_ns, bucket_ns=self.bucket_ns, sep=_SEP)
        if len(cols["bucket"]) == 0:
            return []
        models = self._reads.model_bucket_usage(start_ns=self.start_ns,
                                               end_ns=self.end_ns, bucket_ns=self.bucket_ns,
                                               sep=_SEP)
        keys, gid = _factorize(cols["gkey"])
        idx = self._index(np.asarray(cols["bucket"], dtype=np.int64))
        shape = (len(keys), self.n_buckets)

        def grid(name: str, fill: float) -> np.ndarray:
            out = np.full(shape, fill)
            out[gid, idx] = np.ma.filled(np.ma.asarray(cols[name], dtype=float), np.nan)
            return out

        n, errors = grid("n", 0.0), grid("errors", 0.0)
        p50, p95 = grid("p50", np.nan), grid("p95", np.nan)
        in_tok, out_tok, n_tok = grid("in_tok", 0.0), grid("out_tok", 0.0), grid("n_tok", 0.0)
        stored_cost, n_cost = grid("cost", np.nan), grid("n_cost", 0.0)
        priced, priced_n, names = self._priced(models, keys, shape)
        series = []
        for g, key in enumerate(keys):
            service, layer, operation, name = key.split(_SEP)
            cost = np.where((n_cost[g] >= n[g]) & (n_cost[g] > 0), stored_cost[g], np.nan)
            # tokens priced per model; a bucket with any unpriced model stays unpriced
            est = np.where((priced_n[g] >= n_tok[g]) & (n_tok[g] > 0), priced[g], np.nan)
            cost = np.where(np.isnan(cost), est, cost)
            model, provider = names.get(g, ("", ""))
            series.append(SpanSeries(
                service, layer, operation, model, name or f"{operation} {model}".strip(),
                provider, n[g], errors[g], p50[g], p95[g], in_tok[g], out_tok[g], n_tok[g],
                cost,
            ))
        return series

    def _priced(
        self, usage: dict[str, np.ndarray], keys: list[str], shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[str, str]]]:
        """Token cost per group and bucket at list prices, the spans priced, and each
        group's most used (model, provider) (ties: the first in sorted order)."""
        priced = np.zeros(shape)
        priced_n = np.zeros(shape)
        rows = len(usage["bucket"])
        if rows == 0:
            return priced, priced_n, {}
        position = {k: i for i, k in enumerate(keys)}
        group = np.fromiter((position.get(k, -1) for k in usage["gkey"]), np.int64, rows)
        # (model, provider) pairs in sorted order (_SEP sorts before any printable character)
        joined, pair = _factorize([f"{m}{_SEP}{p}" for m, p in
                                   zip(usage["model"], usage["provider"], strict=True)])
        pairs = [tuple(k.split(_SEP)) for k in joined]
        rates = [self._rates(provider, model) for model, provider in pairs]
        has_rate = np.array([r is not None for r in rates])
        rate_in = np.array([r[0] if r else 0.0 for r in rates])
        rate_out = np.array([r[1] if r else 0.0 for r in rates])
        bucket = (np.asarray(usage["bucket"], np.int64) - self.start_ns) // self.bucket_ns
        count = np.asarray(usage["n_tok"], float)
        known = group >= 0
        hit = known & has_rate[pair]
        at = (group[hit], bucket[hit])
        p = pair[hit]  # np.add.at adds in row order, as a loop over the rows would
        np.add.at(priced, at, (np.asarray(usage["in_tok"], float)[hit] * rate_in[p]
                               + np.asarray(usage["out_tok"], float)[hit] * rate_out[p]) / 1e6)
        np.add.at(priced_n, at, count[hit])
        per_pair = np.zeros((len(keys), len(pairs)))
        np.add.at(per_pair, (group[known], pair[known]), count[known])
        best = per_pair.argmax(axis=1)
        names = {int(g): pairs[best[g]] for g in np.flatnonzero(per_pair.max(axis=1) > 0)}
        return priced, priced_n, names

    # -- samples --------------------------------------------------------------------------

    def sample_series(self, canonicals: Sequence[str]) -> list[SampleSeries]:
        """Per-bucket aggregates of every series whose canonical name is in *canonicals*."""
        wanted = tuple(sorted(canonicals))
        cached = self._cache.samples.get(wanted)
        if cached is None:
            cached = self._cache.samples[wanted] = self._read_samples(wanted)
        return cached

    def all_sample_series(self) -> list[SampleSeries]:
        """Every stored metric series but histogram parts (``_bucket``/``_count``/``_sum``/
        ``_created``); ``canonical`` is the name as received where Strata has no canonical."""
        key = ("__all__",)
        cached = self._cache.samples.get(key)
        if cached is None:
            cached = self._cache.samples[key] = self._read_samples(None)
        return cached

    def _read_samples(self, canonicals: tuple[str, ...] | None) -> list[SampleSeries]:
        """Series of *canonicals*, or of every non-histogram metric when None."""
        if self.n_buckets == 0 or canonicals == ():
            return []
        cols = self._reads.sample_bucket_stats(
            start_ns=self.start_ns, end_ns=self.end_ns, bucket_ns=self.bucket_ns,
            sep=_SEP, canonicals=canonicals)
        if len(cols["bucket"]) == 0:
            return []
        keys, gid = _factorize(cols["skey"])
        idx = self._index(np.asarray(cols["bucket"], dtype=np.int64))
        shape = (len(keys), self.n_buckets)
        grids = {}
        for name in ("mean", "hi", "lo"):
            out = np.full(shape, np.nan)
            out[gid, idx] = np.asarray(cols[name], dtype=float)
            grids[name] = out
        series = []
        for g, key in enumerate(keys):
            canonical, host, device, source, labels, unit, layer = key.split(_SEP)
            series.append(SampleSeries(
                canonical, unit, host or None, device or None, source or None,
                json.loads(labels), grids["mean"][g], grids["hi"][g], grids["lo"][g], layer,
            ))
        return series

    def clock_reason_series(self, mask: int) -> list[SampleSeries]:
        """Per-GPU fraction of samples per bucket whose clocks-event-reason bits hit *mask*.

        Reads DCGM ``DCGM_FI_DEV_CLOCKS_EVENT_REASONS`` (canonical ``gpu.clock_event_reasons``);
        the fraction is returned in ``mean`` (``max``/``min`` are 0 or 1).
        """
        key = ("__reasons__", str(mask))
        cached = self._cache.samples.get(key)
        if cached is not None:
            return cached
        cols = self._reads.clock_reason_fractions(
            start_ns=self.start_ns, end_ns=self.end_ns, bucket_ns=self.bucket_ns,
            sep=_SEP, mask=mask)
        series: list[SampleSeries] = []
        if len(cols["bucket"]) and self.n_buckets:
            keys, gid = _factorize(cols["skey"])
            idx = self._index(np.asarray(cols["bucket"], dtype=np.int64))
            frac = np.full((len(keys), self.n_buckets), np.nan)
            frac[gid, idx] = np.asarray(cols["frac"], dtype=float)
            for g, k in enumerate(keys):
                host, device = k.split(_SEP)
                series.append(SampleSeries(f"gpu.clock_event_reasons&{mask}", "1",
                                           host or None, device or None, None, {}, frac[g],
                                           frac[g], frac[g]))
        self._cache.samples[key] = series
        return series

    # -- changes and topology -------------------------------------------------------------

    def deployments(self, lookback_ns: int = 6 * 3600 * 1_000_000_000) -> list[Deployment]:
        """Deployments from ``lookback_ns`` before the window start to its end, in time order."""
        if self._cache.deployments is None:
            self._cache.deployments = self._reads.deployments_between(
                self.start_ns - lookback_ns, self.end_ns)
        return self._cache.deployments

    def requests_around(
        self, service: str, *, change_ns: int, until_ns: int, old_version: str | None,
        new_version: str | None, lookback_ns: int, limit: int,
    ) -> dict[str, np.ndarray]:
        """Spans of *service* before and after a change, per entity, bounded by *limit* a
        side (``strata.agent.store.requests``)."""
        return self._priced_requests(self._reads.requests_around(
            service, change_ns=change_ns, until_ns=min(until_ns, self.end_ns),
            lookback_ns=lookback_ns, old_version=old_version, new_version=new_version,
            limit=limit))

    def thin_requests(self, max_per_minute: float) -> dict[str, np.ndarray]:
        """Every span of the entities used at most *max_per_minute* on average over the
        window, to be judged request by request (``strata.agent.store.requests``)."""
        minutes = (self.end_ns - self.start_ns) / 60e9
        return self._priced_requests(self._reads.thin_requests(
            start_ns=self.start_ns, end_ns=self.end_ns,
            max_requests=int(max_per_minute * minutes)))

    def _rates(self, provider: Any, model: Any) -> tuple[float, float] | None:
        """List prices of a (provider, model), looked up once per window."""
        key = (provider or None, model or None)
        if key not in self._cache.rates:
            self._cache.rates[key] = self._price(*key) if self._price else None
        return self._cache.rates[key]

    def _priced_requests(self, cols: dict[str, Any]) -> dict[str, np.ndarray]:
        """Request columns as arrays (NaN for missing numbers); ``cost_usd`` priced from
        tokens where a span has none and the window has a price function."""
        out = {k: np.ma.filled(np.ma.asarray(v, dtype=float), np.nan)
               if k in ("input_tokens", "output_tokens", "cost_usd") else np.asarray(v)
               for k, v in cols.items()}
        if self._price is not None:
            cost = out["cost_usd"]
            for i in np.flatnonzero(np.isnan(cost) & ~np.isnan(out["output_tokens"])):
                rate = self._rates(out["provider"][i], out["model"][i])
                if rate is not None:
                    tokens_in = out["input_tokens"][i]
                    cost[i] = ((0.0 if np.isnan(tokens_in) else tokens_in) * rate[0]
                               + out["output_tokens"][i] * rate[1]) / 1e6
        return out

    def dependencies(self) -> dict[str, frozenset[str]]:
        """Service -> hosts it depends on: GPU hosts of its model spans, servers it calls."""
        if self._cache.dependencies is None:
            rows = self._reads.service_dependencies(start_ns=self.start_ns,
                                                   end_ns=self.end_ns)
            deps: dict[str, set[str]] = {}
            for service, dep in rows:
                deps.setdefault(service, set()).add(dep)
            self._cache.dependencies = {k: frozenset(v) for k, v in deps.items()}
        return self._cache.dependencies


def event_time_bounds(store: Store) -> tuple[int, int] | None:
    """(earliest, latest) event time stored in spans and samples, or None when empty."""
    return window_reads(store).event_time_range()
