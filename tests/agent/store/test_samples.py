"""strata.agent.store.samples: each read against known rows in a real DuckDB file."""

from __future__ import annotations

import pytest
from strata.agent.model import Layer, Sample
from strata.agent.store import samples as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import MIN, T0, S, column_rows, sample, write

INFRA = Layer.INFRASTRUCTURE
UTIL = {"name": "DCGM_FI_DEV_GPU_UTIL", "canonical": "gpu.utilization", "unit": "%",
        "host": "node-1", "device": "GPU-a", "attributes": {"gpu": "0"}}
S1 = sample(value=50.0, t_s=1, **UTIL)
S2 = sample(value=70.0, t_s=30, **UTIL)
S3 = sample(value=90.0, t_s=70, **UTIL)
QUEUE = sample("vllm:num_requests_waiting", 3.0, 10, canonical="serving.queue",
               layer=Layer.SERVING, service="vllm-1")
HISTOGRAM_PART = sample("vllm:e2e_request_latency_seconds_bucket", 1.0, 10,
                        layer=Layer.SERVING, service="vllm-1", attributes={"le": "1"})
MODEL_METRIC = sample("gen_ai.client.token.usage", 7.0, 10, layer=Layer.MODEL, host="node-1")
OTHER_GPU = sample("DCGM_FI_DEV_GPU_UTIL", 1.0, 5, canonical="gpu.utilization", unit="%",
                   host="node-2", device="GPU-b")


@pytest.fixture(name="samples")
def samples_fixture(store: DuckDBStore) -> DuckDBStore:
    write(store, samples=[S1, S2, S3, QUEUE, HISTOGRAM_PART, MODEL_METRIC, OTHER_GPU])
    return store


def _by_time(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.time_unix_nano, s.name))


def test_samples_near_hosts_or_services(samples: DuckDBStore) -> None:
    """Only infrastructure/serving/data samples of the hosts, in range, no histogram parts."""
    cur = samples.cursor()
    near = q.samples_near(cur, since_ns=T0, until_ns=T0 + MIN, hosts=["node-1", "vllm-1"])
    assert _by_time(near) == [S1, QUEUE, S2]
    assert q.samples_near(cur, since_ns=T0, until_ns=T0 + MIN, hosts=[]) == []


def test_bucketed_samples_mean_max_and_increase(samples: DuckDBStore) -> None:
    rows = q.bucketed_samples(samples.cursor(), since_ns=T0, until_ns=T0 + 2 * MIN,
                              step_ns=MIN, hosts=["node-1"])
    series = {"name": "DCGM_FI_DEV_GPU_UTIL", "unit": "%", "layer": INFRA,
              "attributes": {"gpu": "0"}, "canonical": "gpu.utilization", "host": "node-1",
              "device": "GPU-a"}
    assert sorted(rows, key=lambda r: r[0].time_unix_nano) == [
        (Sample(value=60.0, time_unix_nano=T0, **series), 70.0, 20.0),
        (Sample(value=90.0, time_unix_nano=T0 + MIN, **series), 90.0, 0.0),
    ]


def test_metric_series_filters_and_limits(samples: DuckDBStore) -> None:
    cur = samples.cursor()
    node1 = {"name": "DCGM_FI_DEV_GPU_UTIL", "canonical": "gpu.utilization",
             "layer": "infrastructure", "unit": "%", "host": "node-1", "device": "GPU-a",
             "service": None, "labels": {"gpu": "0"},
             "points": [(T0 + S, 50.0), (T0 + 30 * S, 70.0), (T0 + 70 * S, 90.0)]}
    node2 = {**node1, "host": "node-2", "device": "GPU-b", "labels": {},
             "points": [(T0 + 5 * S, 1.0)]}
    window = {"since_ns": T0, "until_ns": T0 + 2 * MIN}
    assert q.metric_series(cur, name="gpu.utilization", **window) == ([node1, node2], False)
    assert q.metric_series(cur, name="gpu.utilization", labels={"host": "node-2"},
                           **window) == ([node2], False)
    assert q.metric_series(cur, labels={"gpu": "0"}, **window) == ([node1], False)
    assert q.metric_series(cur, name="gpu.utilization", max_points=2, **window) == (
        [{**node1, "points": node1["points"][1:]}, node2], True)
    assert q.metric_series(cur, layer="infrastructure", max_series=1, **window) == (
        [node1], True)
    with pytest.raises(ValueError, match="label filter key"):
        q.metric_series(cur, labels={"bad key'": "x"}, **window)


def test_sample_bucket_stats_of_named_or_all_series(samples: DuckDBStore) -> None:
    cur = samples.cursor()
    window = {"start_ns": T0, "end_ns": T0 + 2 * MIN, "bucket_ns": MIN, "sep": "|"}
    node1 = 'gpu.utilization|node-1|GPU-a||{"gpu":"0"}|%|infrastructure'
    node2 = "gpu.utilization|node-2|GPU-b||{}|%|infrastructure"
    utilisation = [(T0, node1, 60.0, 70.0, 50.0), (T0, node2, 1.0, 1.0, 1.0),
                   (T0 + MIN, node1, 90.0, 90.0, 90.0)]
    cols = q.sample_bucket_stats(cur, canonicals=["gpu.utilization"], **window)
    assert list(cols) == ["bucket", "skey", "mean", "hi", "lo"]
    assert column_rows(cols) == utilisation
    everything = column_rows(q.sample_bucket_stats(cur, canonicals=None, **window))
    assert everything == sorted([
        *utilisation,
        (T0, "gen_ai.client.token.usage|node-1|||{}|1|model", 7.0, 7.0, 7.0),
        (T0, "serving.queue|||vllm-1|{}|1|serving", 3.0, 3.0, 3.0),
    ])


def test_clock_reason_fractions(store: DuckDBStore) -> None:
    reasons = {"name": "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "canonical": "gpu.clock_event_reasons",
               "host": "node-1", "device": "GPU-a"}
    write(store, samples=[sample(value=4.0, t_s=1, **reasons), sample(value=0.0, t_s=2, **reasons),
                          sample(value=6.0, t_s=70, **reasons)])
    cols = q.clock_reason_fractions(store.cursor(), start_ns=T0, end_ns=T0 + 2 * MIN,
                                    bucket_ns=MIN, sep="|", mask=4)
    assert list(cols) == ["bucket", "skey", "frac"]
    assert column_rows(cols) == [(T0, "node-1|GPU-a", 0.5), (T0 + MIN, "node-1|GPU-a", 1.0)]


def test_energy_counter_samples_per_gpu_in_time_order(store: DuckDBStore) -> None:
    energy = {"name": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "canonical": "gpu.energy.consumed",
              "unit": "mJ", "host": "node-1"}
    write(store, samples=[
        sample(value=2000.0, t_s=10, device="GPU-a", **energy),
        sample(value=1000.0, t_s=0, device="GPU-a", **energy),
        sample(value=5.0, t_s=5, device="GPU-b", **energy),
        sample(value=9.0, t_s=5, **energy),  # no device
        sample(value=9.0, t_s=100, device="GPU-a", **energy),  # after the range
    ])
    found = q.energy_counter_samples(store.cursor(), "gpu.energy.consumed", since_ns=T0,
                                     until_ns=T0 + 10 * S)
    point = {"name": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "unit": "mJ", "layer": INFRA,
             "host": "node-1"}
    assert found == [
        Sample(value=1000.0, time_unix_nano=T0, device="GPU-a", **point),
        Sample(value=2000.0, time_unix_nano=T0 + 10 * S, device="GPU-a", **point),
        Sample(value=5.0, time_unix_nano=T0 + 5 * S, device="GPU-b", **point),
    ]


def test_latest_collector_metrics(store: DuckDBStore) -> None:
    def self_metric(name: str, value: float, t_s: float, collector: str) -> Sample:
        return sample(name, value, t_s, attributes={"collector": collector})

    write(store, samples=[self_metric("strata.collector.up", 1.0, 1, "scrape")],
          received_ns=10)
    write(store, samples=[
        self_metric("strata.collector.up", 1.0, 1, "nvml"),
        self_metric("strata.collector.up", 0.0, 2, "nvml"),
        self_metric("strata.collector.duration", 0.5, 1, "nvml"),
        self_metric("strata.other", 1.0, 1, "nvml"),
    ], received_ns=100)
    names = ("strata.collector.up", "strata.collector.duration")
    cur = store.cursor()
    assert sorted(q.latest_collector_metrics(cur, names, received_since_ns=50)) == [
        ("nvml", "strata.collector.duration", 0.5), ("nvml", "strata.collector.up", 0.0)]
    assert sorted(q.latest_collector_metrics(cur, names, received_since_ns=0)) == [
        ("nvml", "strata.collector.duration", 0.5), ("nvml", "strata.collector.up", 0.0),
        ("scrape", "strata.collector.up", 1.0)]


def test_gpu_inventory_per_host_and_device(store: DuckDBStore) -> None:
    dcgm = {"modelName": "NVIDIA L4", "Hostname": "n1"}
    write(store, samples=[
        sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1.0, 0, canonical="gpu.energy.consumed",
               host="n1", device="G0", attributes=dcgm),
        sample("DCGM_FI_DEV_GPU_UTIL", 5.0, 0, canonical="gpu.utilization", host="n1",
               device="G1", attributes={**dcgm, "pod": "vllm-0"}),
        sample("DCGM_FI_DEV_GPU_UTIL", 5.0, 540, canonical="gpu.utilization", host="n2",
               device="G9"),  # outside the range
        sample("vllm:num_requests_running", 1.0, 0, canonical="serving.requests.running",
               host="n1", device="G0"),
    ])
    assert q.gpu_inventory(store.cursor(), since_ns=T0, until_ns=T0 + MIN,
                           energy_signal="gpu.energy.consumed") == [
        ("n1", "G0", "NVIDIA L4", None, True), ("n1", "G1", "NVIDIA L4", "vllm-0", False)]
