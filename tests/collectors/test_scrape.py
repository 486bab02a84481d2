"""PrometheusScrapeCollector against a real HTTP server on 127.0.0.1 (RELIABILITY C1-C6)."""

from __future__ import annotations

import math
import time
import tracemalloc

import pytest
from strata.agent.errors import CollectError
from strata.agent.model import Layer
from strata.collectors.scrape import PrometheusScrapeCollector

from tests.collectors.conftest import FixtureServer
from tests.waiting import loose

NOW = 1_800_000_000_000_000_000


def scrape(server: FixtureServer, path: str, profile: str = "prometheus", **kw: object):
    collector = PrometheusScrapeCollector("t", server.url(path), profile, **kw)  # type: ignore[arg-type]
    try:
        return collector.collect(NOW)
    finally:
        collector.close()


def one(samples, name: str, **labels: str):
    found = [
        s
        for s in samples
        if s.name == name and all(s.attributes.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


class TestParsing:
    def test_vllm_fixture_values_names_and_labels(self, fixture_server: FixtureServer) -> None:
        """vLLM series keep names, labels and values; canonical name, layer and unit are set."""
        samples = scrape(fixture_server, "/fixtures/vllm_metrics.txt", "vllm")
        kv = one(samples, "vllm:kv_cache_usage_perc")
        assert kv.value == 0.4172
        assert kv.canonical == "serving.kv_cache.usage"
        assert kv.layer is Layer.SERVING
        assert kv.unit == "1"
        assert kv.attributes == {"engine": "0", "model_name": "Qwen/Qwen2.5-0.5B-Instruct"}
        assert kv.device == "Qwen/Qwen2.5-0.5B-Instruct"
        assert kv.host == "127.0.0.1"
        assert kv.service == "t"
        assert kv.time_unix_nano == NOW
        waiting = one(samples, "vllm:num_requests_waiting")
        assert (waiting.value, waiting.canonical) == (1.0, "serving.requests.waiting")
        stop = one(samples, "vllm:request_success_total", finished_reason="stop")
        assert (stop.value, stop.canonical) == (180.0, "serving.requests.finished")

    def test_gzip_body_equals_plain_body(self, fixture_server: FixtureServer) -> None:
        """A gzip-encoded exposition yields exactly the samples of the plain one."""
        plain = scrape(fixture_server, "/fixtures/milvus_2.3.5_real_scrape.txt", "milvus")
        zipped = scrape(fixture_server, "/gzip/milvus_2.3.5_real_scrape.txt", "milvus")
        assert plain == zipped

    def test_milvus_real_capture(self, fixture_server: FixtureServer) -> None:
        """The real Milvus 2.3.5 capture parses to 2,207 series, as Prometheus counted."""
        samples = scrape(fixture_server, "/fixtures/milvus_2.3.5_real_scrape.txt", "milvus")
        raw = [s for s in samples if s.name == s.name and not s.name.startswith("vectordb.")]
        assert len(raw) == 2207
        flushed = one(samples, "milvus_datacoord_segment_num", segment_state="Flushed")
        assert (flushed.value, flushed.layer, flushed.canonical) == (
            3.0,
            Layer.DATA,
            "vectordb.segments",
        )
        entities = one(samples, "milvus_querynode_entity_num")
        assert entities.value == 6000.0
        assert entities.device == "470632605819338781"

    def test_counter_names_without_total_kept_as_exposed(
        self, fixture_server: FixtureServer
    ) -> None:
        """TGI counters are declared without _total; their names are kept exactly as exposed."""
        samples = scrape(fixture_server, "/fixtures/tgi_metrics.txt", "tgi")
        count = one(samples, "tgi_request_count")
        assert (count.value, count.canonical) == (123.0, "serving.requests")
        assert one(samples, "tgi_request_failure", err="overloaded").value == 1.0
        assert not [s for s in samples if s.name.endswith("_total")]
        vllm = scrape(fixture_server, "/fixtures/vllm_metrics.txt", "vllm")
        assert one(vllm, "vllm:prompt_tokens_total").value == 52480.0

    def test_dcgm_names_classified_as_infrastructure(self, fixture_server: FixtureServer) -> None:
        """The generic profile keeps DCGM names; the name table gives layer, unit and canonical."""
        samples = scrape(fixture_server, "/fixtures/dcgm_exporter_metrics.txt")
        power = one(samples, "DCGM_FI_DEV_POWER_USAGE")
        assert (power.value, power.unit, power.canonical) == (412.563, "W", "gpu.power.draw")
        assert power.layer is Layer.INFRASTRUCTURE
        assert power.device == "GPU-7b6d3f0e-8c2a-4a51-9a3e-1f2d3c4b5a69"
        fb = one(samples, "DCGM_FI_DEV_FB_USED")
        assert (fb.value, fb.unit) == (71208.0, "MiB")

    def test_unknown_names_are_kept_with_profile_layer(self, fixture_server: FixtureServer) -> None:
        """A name Strata does not know is kept as received, with no canonical name."""
        fixture_server.bodies["unknown"] = (
            b'# TYPE my_custom_thing gauge\nmy_custom_thing{a="b"} 7\n'
        )
        samples = scrape(fixture_server, "/dynamic/unknown", "prometheus")
        s = one(samples, "my_custom_thing")
        assert (s.value, s.canonical, s.layer, s.unit) == (7.0, None, Layer.INFRASTRUCTURE, "1")

    def test_exposition_timestamp_is_used(self, fixture_server: FixtureServer) -> None:
        """A sample with its own timestamp (ms in the text format) keeps it, in ns."""
        fixture_server.bodies["ts"] = b"# TYPE up gauge\nup 1 1700000000123\n"
        s = one(scrape(fixture_server, "/dynamic/ts"), "up")
        assert s.time_unix_nano == 1_700_000_000_123_000_000

    def test_nan_dropped_inf_kept(self, fixture_server: FixtureServer) -> None:
        """NaN carries no reading and is dropped; +Inf/-Inf are values and kept."""
        fixture_server.bodies["nan"] = (
            b'# TYPE g gauge\ng{a="1"} NaN\ng{a="2"} +Inf\ng{a="3"} -Inf\n'
        )
        samples = scrape(fixture_server, "/dynamic/nan")
        assert sorted(s.attributes["a"] for s in samples) == ["2", "3"]
        assert math.isinf(one(samples, "g", a="2").value)

    def test_duplicate_series_first_wins(self, fixture_server: FixtureServer) -> None:
        """A duplicated series is kept once, with the first value."""
        fixture_server.bodies["dup"] = b'# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\n'
        assert [s.value for s in scrape(fixture_server, "/dynamic/dup")] == [1.0]

    def test_wrong_content_type_still_parsed(self, fixture_server: FixtureServer) -> None:
        """An exposition with a generic Content-Type is parsed by the text-format rules."""
        assert one(scrape(fixture_server, "/octet-stream"), "up").value == 1.0


class TestFaults:
    def test_target_down(self, dead_url: str) -> None:
        """C1: connection refused fails the scrape with CollectError."""
        collector = PrometheusScrapeCollector("dead", dead_url, "prometheus", timeout_s=2.0)
        with pytest.raises(CollectError) as info:
            collector.collect(NOW)
        assert info.value.target == "dead"
        assert "ConnectError" in info.value.reason
        collector.close()

    def test_slow_target_aborted_at_timeout(self, fixture_server: FixtureServer) -> None:
        """C2: headers after 60x the timeout: the scrape is aborted at the timeout, neither
        before it nor at the target's pace (the +-10 % figure is a benchmark's to measure)."""
        collector = PrometheusScrapeCollector(
            "slow", fixture_server.url("/slow?delay=30"), timeout_s=0.5
        )
        begin = time.monotonic()
        with pytest.raises(CollectError, match="timed out"):
            collector.collect(NOW)
        elapsed = time.monotonic() - begin
        collector.close()
        assert 0.5 * 0.9 <= elapsed <= loose(0.5)

    def test_trickling_body_aborted_at_total_timeout(self, fixture_server: FixtureServer) -> None:
        """C2: a body dribbling one byte every 50 ms (50 s in all) is cut at the total
        timeout."""
        collector = PrometheusScrapeCollector(
            "trickle", fixture_server.url("/trickle?every=0.05"), timeout_s=0.5
        )
        begin = time.monotonic()
        with pytest.raises(CollectError, match="timed out"):
            collector.collect(NOW)
        elapsed = time.monotonic() - begin
        collector.close()
        assert elapsed <= loose(0.5)

    @pytest.mark.parametrize(
        ("path", "reason"),
        [
            ("/garbage", "not UTF-8"),
            ("/html", "not an exposition"),
            ("/truncated", "unparsable"),
            ("/invalid-utf8", "not UTF-8"),
            ("/br", "unsupported Content-Encoding"),
            ("/status/500", "HTTP 500"),
            ("/status/404", "HTTP 404"),
        ],
    )
    def test_garbage_fails_the_scrape(
        self, fixture_server: FixtureServer, path: str, reason: str
    ) -> None:
        """C3: garbage, HTML, truncated or non-UTF-8 bodies fail the scrape with a reason."""
        with pytest.raises(CollectError) as info:
            scrape(fixture_server, path)
        assert reason in info.value.reason

    def test_body_over_limit(self, fixture_server: FixtureServer) -> None:
        """C4: a plain body over body_limit fails the scrape."""
        with pytest.raises(CollectError, match="body_limit"):
            scrape(fixture_server, "/big?mib=4", body_limit_bytes=1024 * 1024)

    def test_gzip_bomb_capped_after_decompression(self, fixture_server: FixtureServer) -> None:
        """C4: ~1 MiB of gzip inflating to 1 GiB is cut at the cap, in bounded memory."""
        limit = 8 * 1024 * 1024
        tracemalloc.start()
        try:
            with pytest.raises(CollectError, match="after decompression"):
                scrape(fixture_server, "/bomb", body_limit_bytes=limit)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= limit + 16 * 1024 * 1024

    def test_sample_limit_fails_whole_scrape(self, fixture_server: FixtureServer) -> None:
        """C5: more series than sample_limit fail the whole scrape; at the limit it passes."""
        body = b"".join(b'm{i="%d"} 1\n' % i for i in range(1000))
        fixture_server.bodies["many"] = body
        with pytest.raises(CollectError, match="sample_limit"):
            scrape(fixture_server, "/dynamic/many", sample_limit=999)
        assert len(scrape(fixture_server, "/dynamic/many", sample_limit=1000)) == 1000

    def test_label_limit(self, fixture_server: FixtureServer) -> None:
        """C6: a sample with more labels than label_limit fails the scrape."""
        labels = ",".join(f'l{i}="v"' for i in range(65)).encode()
        fixture_server.bodies["labels"] = b"m{" + labels + b"} 1\n"
        with pytest.raises(CollectError, match="label_limit"):
            scrape(fixture_server, "/dynamic/labels")
        assert len(scrape(fixture_server, "/dynamic/labels", label_limit=65)) == 1

    def test_label_value_length_limit(self, fixture_server: FixtureServer) -> None:
        """C6: a 100 KiB label value fails the scrape (default limit 2 KiB)."""
        fixture_server.bodies["long"] = b'm{l="' + b"x" * 100 * 1024 + b'"} 1\n'
        with pytest.raises(CollectError, match="label_value_length_limit"):
            scrape(fixture_server, "/dynamic/long")
