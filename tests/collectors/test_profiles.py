"""Profiles: derived per-shard counts, entries per segment, p50/p95, rates, unavailable signals."""

from __future__ import annotations

import math

import pytest
from strata.agent.errors import ConfigError
from strata.collectors.profiles import PROFILES, bucket_quantile, get_profile
from strata.collectors.scrape import PrometheusScrapeCollector

from tests.collectors.conftest import FIXTURES, FixtureServer

T0 = 1_800_000_000_000_000_000
S = 1_000_000_000


def derived(samples, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for s in samples
        if s.name == name and all(s.attributes.get(k) == v for k, v in labels.items())
    ]


def collector(server: FixtureServer, path: str, profile: str) -> PrometheusScrapeCollector:
    return PrometheusScrapeCollector(profile, server.url(path), profile)


class TestBucketQuantile:
    def test_interpolates_like_promql(self) -> None:
        """Linear interpolation inside the bucket holding the rank, as histogram_quantile does."""
        buckets = [(0.1, 58.0), (0.25, 171.0), (0.5, 200.0), (math.inf, 200.0)]
        assert bucket_quantile(0.5, buckets) == pytest.approx(0.1 + 0.15 * 42 / 113)
        assert bucket_quantile(0.95, buckets) == pytest.approx(0.25 + 0.25 * 19 / 29)

    def test_rank_in_inf_bucket_returns_highest_finite_bound(self) -> None:
        """A rank in the +Inf bucket returns the highest finite upper bound."""
        assert bucket_quantile(0.95, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0

    def test_first_bucket_interpolates_from_zero(self) -> None:
        """The lowest bucket interpolates from 0 to its bound."""
        assert bucket_quantile(0.5, [(4.0, 10.0), (math.inf, 10.0)]) == 2.0

    def test_no_observations_or_no_inf_is_absent(self) -> None:
        """No observations, or no +Inf bucket, gives no value rather than 0."""
        assert bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
        assert bucket_quantile(0.5, [(1.0, 3.0)]) is None


class TestServing:
    def test_vllm_quantiles_first_scrape_cumulative(self, fixture_server: FixtureServer) -> None:
        """vLLM TTFT p50/p95 from the fixture's cumulative buckets on the first scrape."""
        c = collector(fixture_server, "/fixtures/vllm_metrics.txt", "vllm")
        samples = c.collect(T0)
        c.close()
        p50 = [s for s in samples if s.name == "serving.ttft.p50"]
        assert len(p50) == 1
        assert p50[0].value == pytest.approx(0.1 + 0.15 * 42 / 113)
        assert p50[0].attributes == {
            "model_name": "Qwen/Qwen2.5-0.5B-Instruct",
            "window": "cumulative",
        }
        assert p50[0].unit == "s"
        assert p50[0].device == "Qwen/Qwen2.5-0.5B-Instruct"
        assert derived(samples, "serving.ttft.p95") == [pytest.approx(0.25 + 0.25 * 19 / 29)]
        assert derived(samples, "serving.request.rate") == []  # needs two scrapes

    def test_vllm_rates_and_interval_quantiles(self, fixture_server: FixtureServer) -> None:
        """Rates and quantiles over the interval between two scrapes, with counter resets."""

        def body(success: int, errors: int, fast: int, slow: int) -> bytes:
            m = 'model_name="m"'
            return (
                "# TYPE vllm:request_success counter\n"
                f'vllm:request_success_total{{finished_reason="stop",{m}}} {success}\n'
                f'vllm:request_success_total{{finished_reason="error",{m}}} {errors}\n'
                "# TYPE vllm:e2e_request_latency_seconds histogram\n"
                f'vllm:e2e_request_latency_seconds_bucket{{{m},le="1.0"}} {fast}\n'
                f'vllm:e2e_request_latency_seconds_bucket{{{m},le="2.0"}} {fast + slow}\n'
                f'vllm:e2e_request_latency_seconds_bucket{{{m},le="+Inf"}} {fast + slow}\n'
                f"vllm:e2e_request_latency_seconds_sum{{{m}}} 0\n"
                f"vllm:e2e_request_latency_seconds_count{{{m}}} {fast + slow}\n"
            ).encode()

        c = collector(fixture_server, "/dynamic/vllm-rates", "vllm")
        fixture_server.bodies["vllm-rates"] = body(100, 10, 100, 0)
        c.collect(T0)
        fixture_server.bodies["vllm-rates"] = body(130, 16, 100, 10)
        second = c.collect(T0 + 15 * S)
        assert derived(second, "serving.request.rate") == [pytest.approx(36 / 15)]
        assert derived(second, "serving.error.rate") == [pytest.approx(6 / 15)]
        # Only the 10 new slow requests count in the interval: p50 is inside (1, 2].
        p50 = [s for s in second if s.name == "serving.e2e_latency.p50"]
        assert p50[0].value == pytest.approx(1.5)
        assert p50[0].attributes["window"] == "interval"
        fixture_server.bodies["vllm-rates"] = body(5, 0, 0, 0)  # server restarted
        third = c.collect(T0 + 30 * S)
        assert derived(third, "serving.request.rate") == [pytest.approx(5 / 15)]
        assert derived(third, "serving.e2e_latency.p50") == []  # no requests: absent
        c.close()

    def test_triton_mean_latency_and_error_rate(self, fixture_server: FixtureServer) -> None:
        """Triton: mean latency from cumulative us counters; TTFT from the ms histogram."""
        c = collector(fixture_server, "/fixtures/triton_metrics.txt", "triton")
        samples = c.collect(T0)
        c.close()
        assert derived(samples, "serving.e2e_latency.mean", model="llama3_8b") == [
            pytest.approx(2.983117e9 / 1204 * 1e-6)
        ]
        # 1,204 first responses: p50 rank 602 lies in (100, 500] ms with 402 below.
        assert derived(samples, "serving.ttft.p50") == [
            pytest.approx((100 + 400 * 200 / 788) / 1000)
        ]
        assert "serving.ttft" not in c.unavailable
        assert "serving.kv_cache.usage" in c.unavailable

    def test_tgi_and_llamacpp_unavailable_signals(self, fixture_server: FixtureServer) -> None:
        """TGI has no TTFT and llama.cpp no latency histograms: reported with a reason."""
        tgi = collector(fixture_server, "/fixtures/tgi_metrics.txt", "tgi")
        tgi.collect(T0)
        tgi.close()
        assert tgi.unavailable["serving.ttft"] == "TGI exposes no time-to-first-token metric"
        llama = collector(fixture_server, "/fixtures/llamacpp_metrics.txt", "llamacpp")
        llama.collect(T0)
        llama.close()
        assert set(llama.unavailable) == {
            "serving.ttft",
            "serving.e2e_latency",
            "serving.request.rate",
            "serving.kv_cache.usage",
        }


class TestData:
    def test_weaviate_segments_per_shard(self, fixture_server: FixtureServer) -> None:
        """Weaviate: active segments summed per shard; entries per segment unavailable."""
        c = collector(fixture_server, "/fixtures/weaviate_metrics.txt", "weaviate")
        samples = c.collect(T0)
        c.close()
        shard = [s for s in samples if s.name == "vectordb.shard.segments"]
        assert [(s.value, s.device) for s in shard] == [(14.0, "kX9pQ2mZ")]
        assert shard[0].attributes == {"class_name": "Document", "shard_name": "kX9pQ2mZ"}
        assert derived(samples, "vectordb.shard.entries_per_segment") == []
        assert "never sets it" in c.unavailable["vectordb.segment.entries"]
        assert "vectordb.bloom_filter.duration" not in c.unavailable  # this fixture is old enough
        assert derived(
            samples, "vectordb.bloom_filter.duration.mean", operation="get_true_negative"
        ) == [pytest.approx(3.2 / 1834 / 1000)]
        # queries_durations_ms: 812 of 1000 under 10 ms -> p50 = 10 * 500/812 ms.
        assert derived(samples, "vectordb.query.latency.p50") == [
            pytest.approx(10 * 500 / 812 / 1000)
        ]

    def test_weaviate_recent_version_without_bloom_metric(
        self, fixture_server: FixtureServer
    ) -> None:
        """Without the removed bloom-filter family, the signal is reported unavailable with why."""
        text = (FIXTURES / "weaviate_metrics.txt").read_text()
        kept = [line for line in text.splitlines() if "lsm_bloom_filters" not in line]
        fixture_server.bodies["weaviate-new"] = ("\n".join(kept) + "\n").encode()
        c = collector(fixture_server, "/dynamic/weaviate-new", "weaviate")
        samples = c.collect(T0)
        c.close()
        assert "3b080d9a48" in c.unavailable["vectordb.bloom_filter.duration"]
        assert derived(samples, "vectordb.bloom_filter.duration.mean") == []

    def test_weaviate_critical_buckets_only(self, fixture_server: FixtureServer) -> None:
        """With critical-buckets-only monitoring the per-shard count uses the bucket gauges."""
        fixture_server.bodies["weaviate-critical"] = (
            b"# TYPE lsm_objects_bucket_segment_count gauge\n"
            b'lsm_objects_bucket_segment_count{class_name="A",shard_name="s1",path="p"} 4\n'
            b"# TYPE lsm_compressed_vecs_bucket_segment_count gauge\n"
            b'lsm_compressed_vecs_bucket_segment_count{class_name="A",shard_name="s1",path="q"} 3\n'
        )
        c = collector(fixture_server, "/dynamic/weaviate-critical", "weaviate")
        samples = c.collect(T0)
        c.close()
        assert derived(samples, "vectordb.shard.segments", shard_name="s1") == [7.0]

    def test_milvus_segments_by_state_and_entries(self, fixture_server: FixtureServer) -> None:
        """Milvus real capture: 3 flushed segments, 3 loaded, 2,000 entries per segment."""
        c = collector(fixture_server, "/fixtures/milvus_2.3.5_real_scrape.txt", "milvus")
        samples = c.collect(T0)
        c.close()
        states = {
            s.attributes["segment_state"]: s.value
            for s in samples
            if s.name == "vectordb.segments.by_state"
        }
        assert states == {"Dropped": 0, "Flushed": 3, "Flushing": 0, "Growing": 0, "Sealed": 0}
        assert derived(samples, "vectordb.shard.segments") == [3.0]
        assert derived(samples, "vectordb.shard.entries_per_segment") == [2000.0]
        # search: 1 of 20 under 1 ms, 18 under 2 ms -> p50 = 1 + (10 - 1)/17 ms.
        assert derived(samples, "vectordb.query.latency.p50", query_type="search") == [
            pytest.approx((1 + 9 / 17) / 1000)
        ]

    def test_milvus_label_drift(self, fixture_server: FixtureServer) -> None:
        """Newer Milvus label sets (segment_level, segment_is_sorted) are read dynamically."""
        fixture_server.bodies["milvus-new"] = (
            b"# TYPE milvus_datacoord_segment_num gauge\n"
            b'milvus_datacoord_segment_num{segment_state="Flushed",segment_level="L1"} 2\n'
            b'milvus_datacoord_segment_num{segment_state="Flushed",segment_level="L0"} 1\n'
            b'milvus_datacoord_segment_num{segment_state="Growing",segment_level="L1"} 1\n'
        )
        c = collector(fixture_server, "/dynamic/milvus-new", "milvus")
        samples = c.collect(T0)
        c.close()
        assert derived(samples, "vectordb.segments.by_state", segment_state="Flushed") == [3.0]
        assert derived(samples, "vectordb.segments.by_state", segment_state="Growing") == [1.0]

    def test_qdrant_metrics_point_to_telemetry(self, fixture_server: FixtureServer) -> None:
        """Qdrant /metrics: points per collection kept; segment detail marked unavailable."""
        c = collector(fixture_server, "/fixtures/qdrant_metrics.txt", "qdrant")
        samples = c.collect(T0)
        c.close()
        points = [s for s in samples if s.name == "collection_points"]
        assert points
        assert all(s.canonical == "vectordb.rows" for s in points)
        assert "telemetry" in c.unavailable["vectordb.shard.segments"]


def test_unknown_profile_names_the_knob() -> None:
    """An unknown profile name raises ConfigError listing the valid ones."""
    with pytest.raises(ConfigError, match="scrape profile must be one of"):
        get_profile("ollama")
    assert set(PROFILES) == {
        "vllm",
        "tgi",
        "triton",
        "llamacpp",
        "weaviate",
        "milvus",
        "qdrant",
        "prometheus",
    }
