-- Strata's migration on top of the Collector's tables (otel_schema.sql), version 1.
-- Hot attributes become MATERIALIZED columns: computed at insert (and on read for parts
-- written before the migration), so the analysis scans narrow columns, not the maps.
-- Strata's writer (rows.py) puts its enrichment in these attribute keys; spans a Collector
-- wrote without it fall back to the GenAI semantic conventions.
ALTER TABLE otel_traces
    ADD COLUMN IF NOT EXISTS StrataLayer LowCardinality(String) MATERIALIZED
        multiIf(SpanAttributes['strata.layer'] != '', SpanAttributes['strata.layer'],
                mapContains(SpanAttributes, 'gen_ai.operation.name'), 'model',
                mapContains(SpanAttributes, 'db.system.name')
                    OR mapContains(SpanAttributes, 'db.system'), 'data',
                'orchestration'),
    ADD COLUMN IF NOT EXISTS GenAiOperation LowCardinality(String) MATERIALIZED
        SpanAttributes['gen_ai.operation.name'],
    ADD COLUMN IF NOT EXISTS GenAiProvider LowCardinality(String) MATERIALIZED
        if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
           SpanAttributes['gen_ai.system']),
    ADD COLUMN IF NOT EXISTS GenAiRequestModel LowCardinality(String) MATERIALIZED
        SpanAttributes['gen_ai.request.model'],
    ADD COLUMN IF NOT EXISTS GenAiResponseModel LowCardinality(String) MATERIALIZED
        SpanAttributes['gen_ai.response.model'],
    ADD COLUMN IF NOT EXISTS InputTokens Nullable(Int64) MATERIALIZED
        toInt64OrNull(SpanAttributes['gen_ai.usage.input_tokens']),
    ADD COLUMN IF NOT EXISTS OutputTokens Nullable(Int64) MATERIALIZED
        toInt64OrNull(SpanAttributes['gen_ai.usage.output_tokens']),
    ADD COLUMN IF NOT EXISTS CostUsd Nullable(Float64) MATERIALIZED
        toFloat64OrNull(SpanAttributes['gen_ai.usage.cost.usd']),
    ADD COLUMN IF NOT EXISTS EnergyWh Nullable(Float64) MATERIALIZED
        toFloat64OrNull(SpanAttributes['strata.energy.wh']),
    ADD COLUMN IF NOT EXISTS Co2eG Nullable(Float64) MATERIALIZED
        toFloat64OrNull(SpanAttributes['strata.co2e.g']),
    ADD COLUMN IF NOT EXISTS ServiceVersion LowCardinality(String) MATERIALIZED
        ResourceAttributes['service.version'],
    ADD COLUMN IF NOT EXISTS Team LowCardinality(String) MATERIALIZED
        SpanAttributes['strata.team'],
    ADD COLUMN IF NOT EXISTS Host LowCardinality(String) MATERIALIZED
        if(SpanAttributes['strata.host'] != '', SpanAttributes['strata.host'],
           ResourceAttributes['host.name']),
    ADD COLUMN IF NOT EXISTS ErrorType LowCardinality(String) MATERIALIZED
        SpanAttributes['error.type'],
    ADD COLUMN IF NOT EXISTS ServerAddress LowCardinality(String) MATERIALIZED
        SpanAttributes['server.address'],
    ADD COLUMN IF NOT EXISTS StartNs Int64 MATERIALIZED toUnixTimestamp64Nano(Timestamp),
    -- the API's cost and energy reads split by source (agent/store/clickhouse/reports.py)
    ADD COLUMN IF NOT EXISTS CostSource LowCardinality(String) MATERIALIZED
        SpanAttributes['strata.cost.source'],
    ADD COLUMN IF NOT EXISTS EnergySource LowCardinality(String) MATERIALIZED
        SpanAttributes['strata.energy.source'],
    -- When ClickHouse stored the span (whoever wrote it: the hub, a Collector, a sidecar's
    -- forwarder): the hub's /metrics counts spans received since its previous scrape, as
    -- the agent does with its received_ns. Parts stored before this column existed would
    -- compute it anew on every read: migrate() writes it into them once.
    ADD COLUMN IF NOT EXISTS ReceivedNs Int64 MATERIALIZED toUnixTimestamp64Nano(now64(9)),
    ADD INDEX IF NOT EXISTS idx_received_ns ReceivedNs TYPE minmax GRANULARITY 1;

ALTER TABLE otel_metrics_gauge
    ADD COLUMN IF NOT EXISTS Canonical LowCardinality(String) MATERIALIZED
        if(Attributes['strata.canonical'] != '', Attributes['strata.canonical'], MetricName),
    ADD COLUMN IF NOT EXISTS StrataLayer LowCardinality(String) MATERIALIZED
        if(Attributes['strata.layer'] != '', Attributes['strata.layer'], 'infrastructure'),
    ADD COLUMN IF NOT EXISTS Host LowCardinality(String) MATERIALIZED
        if(Attributes['strata.host'] != '', Attributes['strata.host'],
           ResourceAttributes['host.name']),
    ADD COLUMN IF NOT EXISTS Device LowCardinality(String) MATERIALIZED
        Attributes['strata.device'],
    ADD COLUMN IF NOT EXISTS TimeNs Int64 MATERIALIZED toUnixTimestamp64Nano(TimeUnix);

ALTER TABLE otel_metrics_sum
    ADD COLUMN IF NOT EXISTS Canonical LowCardinality(String) MATERIALIZED
        if(Attributes['strata.canonical'] != '', Attributes['strata.canonical'], MetricName),
    ADD COLUMN IF NOT EXISTS StrataLayer LowCardinality(String) MATERIALIZED
        if(Attributes['strata.layer'] != '', Attributes['strata.layer'], 'infrastructure'),
    ADD COLUMN IF NOT EXISTS Host LowCardinality(String) MATERIALIZED
        if(Attributes['strata.host'] != '', Attributes['strata.host'],
           ResourceAttributes['host.name']),
    ADD COLUMN IF NOT EXISTS Device LowCardinality(String) MATERIALIZED
        Attributes['strata.device'],
    ADD COLUMN IF NOT EXISTS TimeNs Int64 MATERIALIZED toUnixTimestamp64Nano(TimeUnix);

-- A forwarder's retry of an insert ClickHouse already stored (the acknowledgement was lost)
-- carries the same insert_deduplication_token: keep a window of recent tokens so it is
-- dropped. (Replicated tables deduplicate by their own window.)
ALTER TABLE otel_traces MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE otel_metrics_gauge MODIFY SETTING non_replicated_deduplication_window = 1000;

-- Every sample point the detectors read: gauges and sums (histograms are read apart).
-- Attributes still hold Strata's own keys: readers drop them after aggregating.
CREATE VIEW IF NOT EXISTS strata_samples AS
    SELECT TimeUnix, TimeNs, MetricName, Canonical, StrataLayer, MetricUnit, Value, Host,
           Device, ServiceName, Attributes
    FROM otel_metrics_gauge
    UNION ALL
    SELECT TimeUnix, TimeNs, MetricName, Canonical, StrataLayer, MetricUnit, Value, Host,
           Device, ServiceName, Attributes
    FROM otel_metrics_sum;

-- Changes of what a service runs (the sidecar's deployments table). Replacing: two hub
-- replicas that detect the same change store it once.
CREATE TABLE IF NOT EXISTS strata_deployments (
    service String,
    time_ns Int64,
    version Nullable(String),
    previous_version Nullable(String),
    model Nullable(String),
    previous_model Nullable(String),
    source LowCardinality(String),
    description Nullable(String),
    received_ns Int64
) ENGINE = ReplacingMergeTree(received_ns)
ORDER BY (service, time_ns, source);

-- Incident state, keyed by the deterministic incident id: the latest updated_ns wins, so
-- two analysers writing the same incident store it once (reads use FINAL).
CREATE TABLE IF NOT EXISTS strata_incidents (
    id String,
    kind LowCardinality(String),
    layer LowCardinality(String),
    service Nullable(String),
    host Nullable(String),
    status LowCardinality(String),
    severity LowCardinality(String),
    started_ns Int64,
    detected_ns Int64,
    resolved_ns Nullable(Int64),
    summary String,
    evidence String,
    suspected_cause Nullable(String),
    suggestion Nullable(String),
    updated_ns Int64
) ENGINE = ReplacingMergeTree(updated_ns)
ORDER BY id;

-- Timelines: an event is its (incident, time, event, detail); a repeat collapses into one.
CREATE TABLE IF NOT EXISTS strata_incident_events (
    incident_id String,
    time_ns Int64,
    event LowCardinality(String),
    detail String,
    added_ns Int64
) ENGINE = ReplacingMergeTree(added_ns)
ORDER BY (incident_id, time_ns, event, detail);

CREATE TABLE IF NOT EXISTS strata_meta (key String, value String, set_ns Int64)
ENGINE = ReplacingMergeTree(set_ns) ORDER BY key;

-- Hourly cost rollup (cost by team over days reads hours, not spans), filled by the view
-- below at insert. Spans stored before the view existed (a Collector's older data) are not
-- in it: backfill with the view's SELECT as an INSERT (docs/deploy.md).
CREATE TABLE IF NOT EXISTS strata_cost_hourly (
    Hour DateTime,
    Team LowCardinality(String),
    ServiceName LowCardinality(String),
    Model LowCardinality(String),
    Provider LowCardinality(String),
    Requests UInt64,
    Priced UInt64,
    Usd Float64,
    InputTokens Int64,
    OutputTokens Int64,
    EnergyWh Float64,
    Co2eG Float64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(Hour)
ORDER BY (Hour, Team, ServiceName, Model, Provider);

CREATE MATERIALIZED VIEW IF NOT EXISTS strata_cost_hourly_mv TO strata_cost_hourly AS
    SELECT toStartOfHour(Timestamp) AS Hour, Team, ServiceName,
           if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel) AS Model,
           GenAiProvider AS Provider, count() AS Requests, count(CostUsd) AS Priced,
           sum(coalesce(CostUsd, 0)) AS Usd, sum(coalesce(InputTokens, 0)) AS InputTokens,
           sum(coalesce(OutputTokens, 0)) AS OutputTokens,
           sum(coalesce(EnergyWh, 0)) AS EnergyWh, sum(coalesce(Co2eG, 0)) AS Co2eG
    FROM otel_traces
    GROUP BY Hour, Team, ServiceName, Model, Provider;

-- Scored anomaly buckets (agent/store/anomalies.py's table): a (series, bucket) scored by
-- two replicas is stored once. The scoring watermark is strata_meta's
-- anomaly_scored_until_ns, versioned by its own value so it never moves back.
CREATE TABLE IF NOT EXISTS strata_anomalies (
    series String,
    time_ns Int64,
    layer LowCardinality(String),
    signal LowCardinality(String),
    unit LowCardinality(String),
    service Nullable(String),
    host Nullable(String),
    device Nullable(String),
    labels String,
    value Float64,
    score Float64,
    received_ns Int64
) ENGINE = ReplacingMergeTree
ORDER BY (series, time_ns);

-- Per-minute rollups that the window reads query instead of raw rows (issue 20's scale:
-- a 24 h window of a fleet is 10^8 spans and 10^9 samples, too many to group on every
-- analysis pass). Filled by the views below at insert; every column merges exactly, so a
-- read over whole minutes gives what the raw rows give: latency quantiles keep their exact
-- state (quantilesExactInclusive: the values themselves, as DuckDB's quantile_cont reads
-- them), means keep sum and count. Rows stored before a view existed are not in its rollup:
-- backfill with the view's SELECT as an INSERT (docs/deploy.md).
CREATE TABLE IF NOT EXISTS strata_spans_minute (
    Minute Int64,
    ServiceName LowCardinality(String),
    StrataLayer LowCardinality(String),
    GenAiOperation LowCardinality(String),
    Name LowCardinality(String),
    Model LowCardinality(String),
    Provider LowCardinality(String),
    Requests SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Latency AggregateFunction(quantilesExactInclusiveIf(0.5, 0.95), UInt64, UInt8),
    Tokened SimpleAggregateFunction(sum, UInt64),
    InTokens SimpleAggregateFunction(sum, Int64),
    OutTokens SimpleAggregateFunction(sum, Int64),
    Priced SimpleAggregateFunction(sum, UInt64),
    Usd SimpleAggregateFunction(sum, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY intDiv(Minute, 86400000000000)
ORDER BY (Minute, ServiceName, StrataLayer, GenAiOperation, Name, Model, Provider);

-- GenAI spans only (the window's span reads); Name is '' on the model layer, whose spans
-- group by operation whatever their name. Tokened: spans reporting output tokens (their
-- input tokens are the ones summed); Priced: spans with a stored cost.
CREATE MATERIALIZED VIEW IF NOT EXISTS strata_spans_minute_mv TO strata_spans_minute AS
    SELECT intDiv(StartNs, 60000000000) * 60000000000 AS Minute, ServiceName, StrataLayer,
           GenAiOperation, if(StrataLayer = 'model', '', SpanName) AS Name,
           if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel) AS Model,
           GenAiProvider AS Provider, count() AS Requests,
           countIf(StatusCode = 'Error') AS Errors,
           quantilesExactInclusiveIfState(0.5, 0.95)(Duration, StatusCode != 'Error')
             AS Latency,
           count(OutputTokens) AS Tokened,
           sumIf(coalesce(InputTokens, 0), OutputTokens IS NOT NULL) AS InTokens,
           sum(coalesce(OutputTokens, 0)) AS OutTokens, count(CostUsd) AS Priced,
           sum(coalesce(CostUsd, 0)) AS Usd
    FROM otel_traces
    WHERE GenAiOperation != ''
    GROUP BY Minute, ServiceName, StrataLayer, GenAiOperation, Name, Model, Provider;

-- One row per series and minute (the grouping of the window's sample reads: the labels
-- are the series' whole attribute map, hashed). Labels: the attributes less Strata's own
-- keys, as JSON; Reasons: how many samples of gpu.clock_event_reasons had each bit mask.
CREATE TABLE IF NOT EXISTS strata_samples_minute (
    Canonical LowCardinality(String),
    Minute Int64,
    Host LowCardinality(String),
    Device LowCardinality(String),
    ServiceName LowCardinality(String),
    MetricUnit LowCardinality(String),
    StrataLayer LowCardinality(String),
    Series FixedString(16),
    Labels SimpleAggregateFunction(any, String),
    Samples SimpleAggregateFunction(sum, UInt64),
    Total SimpleAggregateFunction(sum, Float64),
    Hi SimpleAggregateFunction(max, Float64),
    Lo SimpleAggregateFunction(min, Float64),
    Reasons SimpleAggregateFunction(sumMap, Map(Int64, UInt64))
) ENGINE = AggregatingMergeTree
PARTITION BY intDiv(Minute, 86400000000000)
ORDER BY (Canonical, Minute, Host, Device, ServiceName, MetricUnit, StrataLayer, Series);

CREATE MATERIALIZED VIEW IF NOT EXISTS strata_gauge_minute_mv TO strata_samples_minute AS
    SELECT Canonical, intDiv(TimeNs, 60000000000) * 60000000000 AS Minute, Host, Device,
           ServiceName, MetricUnit, StrataLayer, sipHash128(Attributes) AS Series,
           toJSONString(mapFilter((k, v) -> NOT startsWith(k, 'strata.'), any(Attributes)))
             AS Labels,
           count() AS Samples, sum(Value) AS Total, max(Value) AS Hi, min(Value) AS Lo,
           sumMap(if(Canonical = 'gpu.clock_event_reasons',
                     map(toInt64(round(Value)), toUInt64(1)),
                     CAST(map(), 'Map(Int64, UInt64)'))) AS Reasons
    FROM otel_metrics_gauge
    GROUP BY Canonical, Minute, Host, Device, ServiceName, MetricUnit, StrataLayer, Series;

-- the same SELECT on the sums (a view fires on inserts into its one source table)
CREATE MATERIALIZED VIEW IF NOT EXISTS strata_sum_minute_mv TO strata_samples_minute AS
    SELECT Canonical, intDiv(TimeNs, 60000000000) * 60000000000 AS Minute, Host, Device,
           ServiceName, MetricUnit, StrataLayer, sipHash128(Attributes) AS Series,
           toJSONString(mapFilter((k, v) -> NOT startsWith(k, 'strata.'), any(Attributes)))
             AS Labels,
           count() AS Samples, sum(Value) AS Total, max(Value) AS Hi, min(Value) AS Lo,
           sumMap(if(Canonical = 'gpu.clock_event_reasons',
                     map(toInt64(round(Value)), toUInt64(1)),
                     CAST(map(), 'Map(Int64, UInt64)'))) AS Reasons
    FROM otel_metrics_sum
    GROUP BY Canonical, Minute, Host, Device, ServiceName, MetricUnit, StrataLayer, Series;

-- Per service and minute: how many requests each entity judged request by request had
-- (Kind 'entity': 'root', 'model <operation>', 'tool <name>', as reads.py's request reads
-- name them) and which hosts and servers it depended on (Kind 'dependency'), so neither
-- read scans the window's spans to find them. The entities are reads.py's _ENTITIES.
CREATE TABLE IF NOT EXISTS strata_service_minute (
    Minute Int64,
    ServiceName LowCardinality(String),
    Kind LowCardinality(String),
    Name String,
    Requests SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY intDiv(Minute, 86400000000000)
ORDER BY (Minute, ServiceName, Kind, Name);

CREATE MATERIALIZED VIEW IF NOT EXISTS strata_service_minute_mv TO strata_service_minute AS
    SELECT Minute, ServiceName, link.1 AS Kind, link.2 AS Name, count() AS Requests
    FROM (
        SELECT intDiv(StartNs, 60000000000) * 60000000000 AS Minute, ServiceName,
               arrayJoin(arrayFilter(x -> x.2 != '', [
                   ('entity', if(ParentSpanId = '', 'root', '')),
                   ('entity', if(StrataLayer = 'model' AND GenAiOperation != '',
                                 concat('model ', GenAiOperation), '')),
                   ('entity', if(GenAiOperation = 'execute_tool', concat('tool ', SpanName),
                                 '')),
                   ('dependency', if(StrataLayer IN ('model', 'serving'), toString(Host), '')),
                   ('dependency', if(StrataLayer IN ('model', 'serving', 'data'),
                                     toString(ServerAddress), ''))])) AS link
        FROM otel_traces)
    GROUP BY Minute, ServiceName, link;

-- Alerts (webhooks) from the hub: the wall time each incident version was written (0 for
-- versions written before this column), the incident contents already notified, and the
-- replicas that send alerts (the live one with the lowest id sends; store/clickhouse/alerts.py).
ALTER TABLE strata_incidents ADD COLUMN IF NOT EXISTS written_ns Int64 DEFAULT 0;

CREATE TABLE IF NOT EXISTS strata_alert_ledger (
    incident_id String,
    digest String,
    noted_ns Int64
) ENGINE = ReplacingMergeTree(noted_ns)
ORDER BY (incident_id, digest);

CREATE TABLE IF NOT EXISTS strata_alert_senders (replica String, beat_ns Int64)
ENGINE = ReplacingMergeTree(beat_ns)
ORDER BY replica
TTL toDateTime(intDiv(beat_ns, 1000000000)) + INTERVAL 1 DAY;
