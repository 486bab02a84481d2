"""Per-product scrape profiles (data tables) and the signals derived from a scrape.

A profile says which labels identify the device (shard, collection, model), which histograms
give p50/p95, which counters give rates, which gauges add up per shard, and which signals the
product cannot give (with the reason). ``derive`` turns one scrape's raw samples into derived
samples; rates and interval quantiles need the previous scrape, kept in a ``DeriveState``
owned by the collector.

Derivations follow PromQL: ``histogram_quantile`` interpolation over
``sum by (labels, le)(increase(x_bucket))``; ``rate`` per series with counter resets, summed
by the profile's labels. The first scrape has no previous values: quantiles and means then
use the cumulative counts (attribute ``window="cumulative"``), rates are absent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from strata.agent.errors import ConfigError
from strata.agent.ingest.metric_names import DERIVED
from strata.agent.model import Layer, Sample
from strata.agent.units import NS_PER_S

__all__ = [
    "PROFILES",
    "CounterMean",
    "CounterRate",
    "DeriveState",
    "GaugeRatio",
    "GaugeSum",
    "HistogramQuantiles",
    "Profile",
    "Unavailable",
    "bucket_quantile",
    "derive",
    "get_profile",
]

_NO_FILTER: Mapping[str, frozenset[str]] = {}
QUANTILES = ((0.5, "p50"), (0.95, "p95"))


@dataclass(frozen=True, slots=True)
class HistogramQuantiles:
    """p50/p95 of histogram ``family`` (name without ``_bucket``), in seconds via ``scale``."""

    family: str
    canonical: str
    by: tuple[str, ...]
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class CounterRate:
    """Per-second rate of the counters in ``series``, summed by ``by``, filtered by ``where``."""

    series: tuple[str, ...]
    canonical: str
    by: tuple[str, ...]
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CounterMean:
    """Mean per event: increase of ``sum_series`` / increase of ``count_series`` (times scale)."""

    sum_series: str
    count_series: str
    canonical: str
    by: tuple[str, ...]
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class GaugeSum:
    """Sum of gauges by ``by``; ``alternatives`` are tried in order, the first present wins."""

    alternatives: tuple[tuple[str, ...], ...]
    canonical: str
    by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GaugeRatio:
    """sum(numerator) / sum(denominator) by ``by``; absent where the denominator is 0."""

    numerator: str
    denominator: str
    canonical: str
    by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A signal the product cannot give, and why; void if ``unless_present`` is scraped."""

    signal: str
    reason: str
    unless_present: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    layer: Layer
    device_labels: tuple[str, ...] = ()
    quantiles: tuple[HistogramQuantiles, ...] = ()
    rates: tuple[CounterRate, ...] = ()
    means: tuple[CounterMean, ...] = ()
    sums: tuple[GaugeSum, ...] = ()
    ratios: tuple[GaugeRatio, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()


_ERR = frozenset({"abort", "error"})
_WEAVIATE_SHARD = ("class_name", "shard_name")

PROFILES: Mapping[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "vllm",
            Layer.SERVING,
            ("model_name",),
            quantiles=(
                HistogramQuantiles(
                    "vllm:time_to_first_token_seconds", "serving.ttft", ("model_name",)
                ),
                HistogramQuantiles(
                    "vllm:e2e_request_latency_seconds", "serving.e2e_latency", ("model_name",)
                ),
                HistogramQuantiles(
                    "vllm:inter_token_latency_seconds",
                    "serving.inter_token_latency",
                    ("model_name",),
                ),
            ),
            rates=(
                CounterRate(
                    ("vllm:request_success_total",), "serving.request.rate", ("model_name",)
                ),
                CounterRate(
                    ("vllm:request_success_total",),
                    "serving.error.rate",
                    ("model_name",),
                    {"finished_reason": _ERR},
                ),
                CounterRate(
                    ("vllm:generation_tokens_total",),
                    "serving.tokens.generated.rate",
                    ("model_name",),
                ),
            ),
        ),
        Profile(
            "tgi",
            Layer.SERVING,
            quantiles=(
                HistogramQuantiles("tgi_request_duration", "serving.e2e_latency", ()),
                HistogramQuantiles(
                    "tgi_request_mean_time_per_token_duration", "serving.inter_token_latency", ()
                ),
            ),
            rates=(
                CounterRate(("tgi_request_count",), "serving.request.rate", ()),
                CounterRate(("tgi_request_failure",), "serving.error.rate", ()),
            ),
            unavailable=(
                Unavailable("serving.ttft", "TGI exposes no time-to-first-token metric"),
                Unavailable(
                    "serving.kv_cache.usage",
                    "TGI exposes no KV-cache metric (tgi_batch_current_max_tokens is a budget)",
                ),
            ),
        ),
        Profile(
            "triton",
            Layer.SERVING,
            ("model",),
            quantiles=(
                HistogramQuantiles(
                    "nv_inference_first_response_histogram_ms", "serving.ttft", ("model",), 1e-3
                ),
            ),
            rates=(
                CounterRate(
                    ("nv_inference_request_success", "nv_inference_request_failure"),
                    "serving.request.rate",
                    ("model",),
                ),
                CounterRate(("nv_inference_request_failure",), "serving.error.rate", ("model",)),
            ),
            means=(
                CounterMean(
                    "nv_inference_request_duration_us",
                    "nv_inference_request_success",
                    "serving.e2e_latency.mean",
                    ("model",),
                    1e-6,
                ),
            ),
            unavailable=(
                Unavailable(
                    "serving.ttft",
                    "Triton exposes TTFT only with --metrics-config histogram_latencies=true",
                    unless_present="nv_inference_first_response_histogram_ms_bucket",
                ),
                Unavailable(
                    "serving.e2e_latency.p95",
                    "Triton core exports cumulative microsecond counters, not latency histograms",
                ),
                Unavailable("serving.kv_cache.usage", "Triton core has no KV-cache metric"),
            ),
        ),
        Profile(
            "llamacpp",
            Layer.SERVING,
            rates=(
                CounterRate(
                    ("llamacpp:tokens_predicted_total",), "serving.tokens.generated.rate", ()
                ),
            ),
            unavailable=(
                Unavailable("serving.ttft", "llama.cpp server exposes no latency histograms"),
                Unavailable(
                    "serving.e2e_latency", "llama.cpp server exposes no latency histograms"
                ),
                Unavailable("serving.request.rate", "llama.cpp server exposes no request counter"),
                Unavailable(
                    "serving.kv_cache.usage",
                    "llamacpp:kv_cache_usage_ratio was removed from current llama.cpp builds",
                    unless_present="llamacpp:kv_cache_usage_ratio",
                ),
            ),
        ),
        Profile(
            "weaviate",
            Layer.DATA,
            ("shard_name",),
            quantiles=(
                HistogramQuantiles(
                    "queries_durations_ms",
                    "vectordb.query.latency",
                    ("class_name", "query_type"),
                    1e-3,
                ),
            ),
            means=(
                CounterMean(
                    "lsm_bloom_filters_duration_ms_sum",
                    "lsm_bloom_filters_duration_ms_count",
                    "vectordb.bloom_filter.duration.mean",
                    (*_WEAVIATE_SHARD, "operation"),
                    1e-3,
                ),
            ),
            sums=(
                GaugeSum(
                    (
                        ("lsm_active_segments",),
                        (
                            "lsm_objects_bucket_segment_count",
                            "lsm_compressed_vecs_bucket_segment_count",
                        ),
                    ),
                    "vectordb.shard.segments",
                    _WEAVIATE_SHARD,
                ),
            ),
            ratios=(
                GaugeRatio(
                    "lsm_segment_objects",
                    "lsm_segment_count",
                    "vectordb.shard.entries_per_segment",
                    _WEAVIATE_SHARD,
                ),
            ),
            unavailable=(
                Unavailable(
                    "vectordb.segment.entries",
                    "Weaviate registers lsm_segment_objects but never sets it (v1.25.0 to HEAD)",
                    unless_present="lsm_segment_objects",
                ),
                Unavailable(
                    "vectordb.bloom_filter.duration",
                    "lsm_bloom_filters_duration_ms was removed in Weaviate v1.31.13, v1.32.6 and "
                    "v1.33.0 (commit 3b080d9a48)",
                    unless_present="lsm_bloom_filters_duration_ms_count",
                ),
                Unavailable(
                    "vectordb.shard.segments",
                    "no LSM segment gauges: PROMETHEUS_MONITORING_GROUP=true suppresses them",
                    unless_present="lsm_segment_count",
                ),
            ),
        ),
        Profile(
            "milvus",
            Layer.DATA,
            ("collection_id", "collection_name"),
            quantiles=(
                HistogramQuantiles(
                    "milvus_proxy_sq_latency", "vectordb.query.latency", ("query_type",), 1e-3
                ),
            ),
            rates=(
                CounterRate(
                    ("milvus_proxy_req_count",),
                    "vectordb.request.rate",
                    ("function_name",),
                    {"status": frozenset({"total"})},
                ),
            ),
            sums=(
                GaugeSum(
                    (("milvus_datacoord_segment_num",),),
                    "vectordb.segments.by_state",
                    ("segment_state",),
                ),
                GaugeSum(
                    (("milvus_querynode_segment_num",),),
                    "vectordb.shard.segments",
                    ("collection_id",),
                ),
            ),
            ratios=(
                GaugeRatio(
                    "milvus_querynode_entity_num",
                    "milvus_querynode_segment_num",
                    "vectordb.shard.entries_per_segment",
                    ("collection_id",),
                ),
            ),
            unavailable=(
                Unavailable(
                    "vectordb.segment.entries",
                    "Milvus has no per-segment row series; entries per segment is the loaded "
                    "average (entity_num / segment_num)",
                ),
            ),
        ),
        Profile(
            "qdrant",
            Layer.DATA,
            ("id", "collection"),
            quantiles=(
                HistogramQuantiles(
                    "rest_responses_duration_seconds", "vectordb.request.latency", ("endpoint",)
                ),
            ),
            rates=(CounterRate(("rest_responses_total",), "vectordb.request.rate", ("endpoint",)),),
            unavailable=(
                Unavailable(
                    "vectordb.shard.segments",
                    "Qdrant /metrics has no segment series; use the Qdrant telemetry collector",
                ),
            ),
        ),
        Profile("prometheus", Layer.INFRASTRUCTURE, ("UUID", "gpu_uuid")),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called *name*.

    Raises:
        ConfigError: no scrape profile has that name (``ollama`` has its own collector).
    """
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        msg = f"scrape profile must be one of {known}, got {name!r}"
        raise ConfigError(msg) from None


LabelKey = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class DeriveState:
    """Previous counter and bucket values per series, kept between scrapes of one target."""

    previous: dict[tuple[str, LabelKey], float] = field(default_factory=dict)
    previous_ns: int | None = None


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """PromQL ``histogram_quantile`` over cumulative ``(upper_bound, count)`` buckets.

    Returns None when there are no observations or no ``+Inf`` bucket.
    """
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(bound):
                return ordered[-2][0] if len(ordered) > 1 else None
            if i == 0 and bound <= 0:
                return bound
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket
        prev_bound, prev_count = bound, count
    return None


def _key(labels: Mapping[str, str], by: Sequence[str]) -> LabelKey:
    return tuple((name, labels.get(name, "")) for name in by)


def _matches(labels: Mapping[str, str], where: Mapping[str, frozenset[str]]) -> bool:
    return all(labels.get(k) in allowed for k, allowed in where.items())


def _label_key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


@dataclass(slots=True)
class _Context:
    profile: Profile
    by_name: Mapping[str, Sequence[Sample]]
    state: DeriveState
    now_ns: int
    dt_s: float | None
    template: Sample
    current: dict[tuple[str, LabelKey], float] = field(default_factory=dict)
    out: list[Sample] = field(default_factory=list)

    def increase(self, sample: Sample) -> tuple[float, float | None]:
        """Current value and increase since the previous scrape (None on the first)."""
        key = (sample.name, _label_key(sample.attributes))
        self.current[key] = sample.value
        prev = self.state.previous.get(key)
        if prev is None:
            return sample.value, None
        return sample.value, (sample.value if sample.value < prev else sample.value - prev)

    def emit(self, canonical: str, value: float, key: LabelKey, **extra: str) -> None:
        if math.isnan(value):
            return
        attrs = {k: v for k, v in key if v}
        attrs.update(extra)
        device = next(
            (attrs[name] for name in self.profile.device_labels if attrs.get(name)),
            self.template.device,
        )
        info = DERIVED.get(canonical)
        self.out.append(
            Sample(
                name=canonical,
                value=value,
                unit=info.unit if info else "1",
                layer=info.layer if info else self.profile.layer,
                time_unix_nano=self.now_ns,
                attributes=attrs,
                canonical=canonical,
                host=self.template.host,
                device=device,
                service=self.template.service,
            )
        )


def _quantiles(ctx: _Context, spec: HistogramQuantiles) -> None:
    cumulative: dict[LabelKey, dict[float, float]] = {}
    interval: dict[LabelKey, dict[float, float]] = {}
    complete = True
    for s in ctx.by_name.get(spec.family + "_bucket", ()):
        le = float(s.attributes.get("le", "nan"))
        if math.isnan(le):
            continue
        key = _key(s.attributes, spec.by)
        value, inc = ctx.increase(s)
        cum = cumulative.setdefault(key, {})
        cum[le] = cum.get(le, 0.0) + value
        if inc is None:
            complete = False
        else:
            bucket = interval.setdefault(key, {})
            bucket[le] = bucket.get(le, 0.0) + inc
    source, window = (interval, "interval") if complete and interval else (cumulative, "cumulative")
    for key, buckets in source.items():
        for q, label in QUANTILES:
            v = bucket_quantile(q, list(buckets.items()))
            if v is not None:
                ctx.emit(f"{spec.canonical}.{label}", v * spec.scale, key, window=window)


def _rates(ctx: _Context, spec: CounterRate) -> None:
    series = [s for name in spec.series for s in ctx.by_name.get(name, ())]
    if ctx.dt_s is None or ctx.dt_s <= 0:
        for s in series:
            ctx.increase(s)
        return
    sums: dict[LabelKey, float] = {}
    for s in series:
        _, inc = ctx.increase(s)
        if inc is None or not _matches(s.attributes, spec.where):
            continue
        key = _key(s.attributes, spec.by)
        sums[key] = sums.get(key, 0.0) + inc
    for key, total in sums.items():
        ctx.emit(spec.canonical, total / ctx.dt_s, key)


def _means(ctx: _Context, spec: CounterMean) -> None:
    acc: dict[LabelKey, list[float]] = {}
    first = False
    for idx, series in ((0, spec.sum_series), (1, spec.count_series)):
        for s in ctx.by_name.get(series, ()):
            value, inc = ctx.increase(s)
            first = first or inc is None
            slot = acc.setdefault(_key(s.attributes, spec.by), [0.0, 0.0, 0.0, 0.0])
            slot[idx] += value
            slot[idx + 2] += 0.0 if inc is None else inc
    for key, (total, count, inc_total, inc_count) in acc.items():
        if first:
            if count > 0:
                ctx.emit(spec.canonical, total / count * spec.scale, key, window="cumulative")
        elif inc_count > 0:
            ctx.emit(spec.canonical, inc_total / inc_count * spec.scale, key, window="interval")


def _gauge_sums(ctx: _Context, spec: GaugeSum) -> None:
    for names in spec.alternatives:
        series = [s for name in names for s in ctx.by_name.get(name, ())]
        if not series:
            continue
        sums: dict[LabelKey, float] = {}
        for s in series:
            key = _key(s.attributes, spec.by)
            sums[key] = sums.get(key, 0.0) + s.value
        for key, total in sums.items():
            ctx.emit(spec.canonical, total, key)
        return


def _ratios(ctx: _Context, spec: GaugeRatio) -> None:
    num: dict[LabelKey, float] = {}
    den: dict[LabelKey, float] = {}
    for target, name in ((num, spec.numerator), (den, spec.denominator)):
        for s in ctx.by_name.get(name, ()):
            key = _key(s.attributes, spec.by)
            target[key] = target.get(key, 0.0) + s.value
    for key, n in num.items():
        d = den.get(key, 0.0)
        if d > 0:
            ctx.emit(spec.canonical, n / d, key)


def unavailable_signals(profile: Profile, names: set[str] | Mapping[str, object]) -> dict[str, str]:
    """Signals this scrape cannot give, with the reason (``names``: series names scraped)."""
    return {
        u.signal: u.reason
        for u in profile.unavailable
        if u.unless_present is None or u.unless_present not in names
    }


def derive(
    profile: Profile,
    by_name: Mapping[str, Sequence[Sample]],
    state: DeriveState,
    now_ns: int,
    template: Sample,
) -> list[Sample]:
    """Derived samples for one scrape; updates *state* for the next one.

    Args:
        profile: the product's profile.
        by_name: the scrape's raw samples grouped by series name.
        state: previous values of this target (mutated).
        now_ns: the scrape time; rates divide by the time since the previous scrape.
        template: a sample whose host, device (fallback) and service the derived ones copy.
    """
    dt_s = None if state.previous_ns is None else (now_ns - state.previous_ns) / NS_PER_S
    ctx = _Context(profile, by_name, state, now_ns, dt_s, template)
    for q in profile.quantiles:
        _quantiles(ctx, q)
    for r in profile.rates:
        _rates(ctx, r)
    for m in profile.means:
        _means(ctx, m)
    for g in profile.sums:
        _gauge_sums(ctx, g)
    for ratio in profile.ratios:
        _ratios(ctx, ratio)
    state.previous = ctx.current
    state.previous_ns = now_ns
    return ctx.out
