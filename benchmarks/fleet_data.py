"""A fleet's day of telemetry generated inside ClickHouse (``INSERT ... SELECT FROM numbers``),
for the hub's scale benchmark (``benchmarks/hub.py --parts fleet``): no row is built in
Python, so 10^8 spans and 5 x 10^8 samples take minutes.

What it writes, as Strata's sidecars forward it (``otel_traces``, ``otel_metrics_gauge``,
``strata_deployments``), every value derived from the row number (deterministic):

- **Spans**: each service (``svc-N``, team ``team-(N % 10)``, one of four models) serves
  requests spread evenly over the day, each four spans: the agent's root
  (``invoke_agent``), a model call (tokens and a stored cost), a tool call
  (``execute_tool``) and a vector-store query (data layer, no GenAI operation). Replicas
  run on ``nodes`` hosts. 0.5% of the spans fail.
- **Deploys**: every tenth service rolls out ``1.1`` at hour 16 (staggered by a minute a
  service). Of those, services ``N % 20 == 3`` get 2.5x slower model calls and services
  ``N % 20 == 13`` a tool failing 30% of the time; the others change nothing.
- **GPU samples**: ``gpus`` GPUs a node, 15 DCGM fields each, evenly spaced over the day
  (1 Hz at 5 x 10^8 samples for 50 nodes x 8 GPUs). One GPU (node 7, GPU 3) overheats from
  hour 20: its temperature climbs, its SM clock drops and it reports thermal throttling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from strata.agent.store.clickhouse.engine import Engine
from strata.agent.units import HOUR_NS

SPANS_PER_REQUEST: Final = 4
METRICS: Final = (  # (DCGM field, Strata canonical, unit)
    ("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", "%"),
    ("DCGM_FI_DEV_GPU_TEMP", "gpu.temperature", "Cel"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gpu.memory.temperature", "Cel"),
    ("DCGM_FI_DEV_FAN_SPEED", "gpu.fan.speed", "%"),
    ("DCGM_FI_DEV_POWER_USAGE", "gpu.power.draw", "W"),
    ("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gpu.power.limit", "W"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "gpu.energy.consumed", "mJ"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gpu.memory.utilization", "%"),
    ("DCGM_FI_DEV_FB_USED", "gpu.memory.used", "By"),
    ("DCGM_FI_DEV_FB_FREE", "gpu.memory.free", "By"),
    ("DCGM_FI_DEV_SM_CLOCK", "gpu.clock.sm", "MHz"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gpu.clock.memory", "MHz"),
    ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gpu.clock_event_reasons", "1"),
    ("DCGM_FI_DEV_XID_ERRORS", "gpu.xid", "1"),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "gpu.ecc.uncorrected.volatile", "1"),
)
# Rows come in the tables' sort order (service by service, series by series), in blocks of
# 1M; skip indexes (the Collector's bloom filters, which the analysis does not read) are
# built by merges rather than at insert: together 4-5x faster to fill on 2 cores.
_INSERT_SETTINGS: Final = ("SETTINGS max_block_size = 1048576, max_insert_block_size = 1048576, "
                           "materialize_skip_indexes_on_insert = 0")

_SPANS: Final = f"""
INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                         ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode)
SELECT fromUnixTimestamp64Nano(
           t0 + [0, 20000000, toInt64(base * 1.1), toInt64(base * 1.2)][k + 1]),
       trace, hex(number), if(k = 0, '', hex(number - k)),
       [concat('invoke_agent ', svc), concat('chat ', model), 'execute_tool search',
        'query qdrant'][k + 1],
       ['Server', 'Client', 'Internal', 'Client'][k + 1], svc,
       map('service.version', version, 'host.name', host),
       [map('strata.layer', 'orchestration', 'gen_ai.operation.name', 'invoke_agent',
            'strata.team', team),
        map('strata.layer', 'model', 'gen_ai.operation.name', 'chat',
            'gen_ai.provider.name', provider, 'gen_ai.request.model', model,
            'gen_ai.usage.input_tokens', toString(tokens_in),
            'gen_ai.usage.output_tokens', toString(tokens_out),
            'gen_ai.usage.cost.usd', toString((tokens_in * 2.5 + tokens_out * 10) / 1e6),
            'strata.team', team, 'server.address', if(provider = 'vllm', host, 'api.example')),
        map('strata.layer', 'orchestration', 'gen_ai.operation.name', 'execute_tool',
            'strata.team', team),
        map('strata.layer', 'data', 'db.system.name', 'qdrant',
            'server.address', 'qdrant:6333', 'strata.team', team)][k + 1],
       [toUInt64(base * 1.5), toUInt64(base * if(slow, 2.5, 1.0)),
        toUInt64(base * 0.2), toUInt64(base * 0.05)][k + 1],
       if(u < 5 OR (k = 2 AND flaky AND u < 300), 'Error', 'Ok')
FROM (
    SELECT number, intDiv(number, {SPANS_PER_REQUEST}) AS r, number % {SPANS_PER_REQUEST} AS k,
           intDiv(r, {{per_service:UInt64}}) AS s, concat('svc-', toString(s)) AS svc,
           concat('team-', toString(s % 10)) AS team,
           {{start:Int64}} + toInt64(r % {{per_service:UInt64}} * {{step:Float64}}
                                     + cityHash64(r) % 1000 * {{step:Float64}} / 1000) AS t0,
           s % 10 = 3 AND t0 >= {{start:Int64}} + 16 * {HOUR_NS} + s * 60000000000 AS deployed,
           if(deployed, '1.1', '1.0') AS version,
           deployed AND s % 20 = 3 AND k = 1 AS slow, deployed AND s % 20 = 13 AS flaky,
           ['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4', 'llama-3.1-70b'][s % 4 + 1] AS model,
           ['openai', 'openai', 'anthropic', 'vllm'][s % 4 + 1] AS provider,
           concat('node-', toString((s * 7 + r % 3) % {{nodes:UInt64}})) AS host,
           hex(cityHash64(r, 'trace')) AS trace, cityHash64(number) % 1000 AS u,
           200 + cityHash64(r, 1) % 800 AS tokens_in, 20 + cityHash64(r, 2) % 300 AS tokens_out,
           (400 + s % 7 * 100) * 1000000 * (0.7 + (cityHash64(number, 3) % 1000) / 1666.0)
             AS base
    FROM numbers({{n:UInt64}}))
{_INSERT_SETTINGS}
"""  # noqa: S608 - fixed text; values are bound

_SAMPLES: Final = f"""
INSERT INTO otel_metrics_gauge (ServiceName, MetricName, MetricUnit, Attributes,
                                ResourceAttributes, TimeUnix, Value)
SELECT 'dcgm-exporter', field.1, field.3,
       map('strata.canonical', field.2, 'strata.layer', 'infrastructure', 'strata.host', host,
           'strata.device', device, 'modelName', 'NVIDIA H100 80GB HBM3', 'gpu', toString(g)),
       map('host.name', host), fromUnixTimestamp64Nano(t),
       [util, temp, temp - 5, 30 + util / 3, 120 + util * 5, 700,
        (t - {{start:Int64}}) / 1e6 * 0.4,
        util * 0.6, 4e10 + util * 3e8, 8e10 - 4e10 - util * 3e8, if(hot, 1980 - heat * 25, 1980),
        2619, if(hot AND heat > 10, 32, 0), 0, 0][m + 1]
FROM (
    SELECT number, intDiv(number, {{ticks:UInt64}}) AS i, i % {len(METRICS)} AS m,
           intDiv(i, {len(METRICS)}) AS gpu_index, intDiv(gpu_index, {{gpus:UInt64}}) AS node,
           gpu_index % {{gpus:UInt64}} AS g, concat('node-', toString(node)) AS host,
           concat('GPU-', toString(node), '-', toString(g)) AS device,
           {{start:Int64}} + toInt64(number % {{ticks:UInt64}} * {{step:Float64}}) AS t,
           {list(METRICS)}[m + 1] AS field,
           node = 7 AND g = 3 AND t >= {{start:Int64}} + 20 * {HOUR_NS} AS hot,
           if(hot, (t - {{start:Int64}} - 20 * {HOUR_NS}) / 6e11, 0) AS heat,
           40 + (cityHash64(gpu_index, intDiv(t, 60000000000)) % 50) AS util,
           if(hot, 65 + heat, 55 + util / 10 + (cityHash64(number) % 10) / 10) AS temp
    FROM numbers({{n:UInt64}}))
{_INSERT_SETTINGS}
"""  # noqa: S608 - fixed text; values are bound


@dataclass(frozen=True, slots=True)
class Fleet:
    """The size of the generated day (``hours`` from ``start_ns``)."""

    services: int = 200
    nodes: int = 50
    gpus: int = 8
    spans: int = 100_000_000
    samples: int = 500_000_000
    start_ns: int = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC: one daily partition
    hours: int = 24

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.hours * HOUR_NS


def fill(engine: Engine, fleet: Fleet) -> None:
    """Write *fleet*'s spans, deployments and samples into *engine*'s database."""
    requests = fleet.spans // SPANS_PER_REQUEST
    per_service = requests // fleet.services
    engine.command(_SPANS, {"per_service": per_service, "nodes": fleet.nodes,
                            "start": fleet.start_ns, "step": fleet.hours * HOUR_NS / per_service,
                            "n": per_service * fleet.services * SPANS_PER_REQUEST})
    engine.command(
        "INSERT INTO strata_deployments SELECT concat('svc-', toString(number)), "
        "{start:Int64} + 16 * 3600000000000 + number * 60000000000, '1.1', '1.0', NULL, NULL, "
        "'service.version', NULL, 0 FROM numbers({services:UInt64}) WHERE number % 10 = 3",
        {"start": fleet.start_ns, "services": fleet.services})
    series = fleet.nodes * fleet.gpus * len(METRICS)
    ticks = fleet.samples // series
    engine.command(_SAMPLES, {"ticks": ticks, "gpus": fleet.gpus, "start": fleet.start_ns,
                              "step": fleet.hours * HOUR_NS / ticks, "n": ticks * series})
