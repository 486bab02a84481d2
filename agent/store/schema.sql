-- Strata store schema, version 4. Applied by agent/store/db.py inside one transaction.
-- Times are BIGINT nanoseconds since the Unix epoch (event time unless named received_ns).
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE IF NOT EXISTS spans (
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR NOT NULL,
    parent_span_id VARCHAR,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    status VARCHAR NOT NULL,
    service VARCHAR NOT NULL,
    service_version VARCHAR,
    layer VARCHAR NOT NULL,
    operation VARCHAR,
    provider VARCHAR,
    request_model VARCHAR,
    response_model VARCHAR,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_tokens BIGINT,
    reasoning_tokens BIGINT,
    error_type VARCHAR,
    host VARCHAR,
    team VARCHAR,
    cost_usd DOUBLE,
    cost_source VARCHAR,
    energy_wh DOUBLE,
    energy_source VARCHAR,
    co2e_g DOUBLE,
    attributes VARCHAR NOT NULL,   -- JSON object, content redacted unless capture is on
    resource VARCHAR NOT NULL,     -- JSON object
    received_ns BIGINT NOT NULL,
    trace_key BIGINT               -- the trace id's first 60 bits (columns.trace_key_sql)
);

CREATE TABLE IF NOT EXISTS samples (
    time_ns BIGINT NOT NULL,
    name VARCHAR NOT NULL,         -- as received
    canonical VARCHAR,             -- Strata name, NULL when unknown
    layer VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    host VARCHAR,
    device VARCHAR,
    service VARCHAR,
    labels VARCHAR NOT NULL,       -- JSON object
    received_ns BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS deployments (
    service VARCHAR NOT NULL,
    time_ns BIGINT NOT NULL,
    version VARCHAR,
    previous_version VARCHAR,
    model VARCHAR,
    previous_model VARCHAR,
    source VARCHAR NOT NULL,
    description VARCHAR,
    received_ns BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS incidents (
    id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    layer VARCHAR NOT NULL,
    service VARCHAR,
    host VARCHAR,
    status VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    started_ns BIGINT NOT NULL,
    detected_ns BIGINT NOT NULL,
    resolved_ns BIGINT,
    summary VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,          -- JSON array
    suspected_cause VARCHAR,            -- JSON object
    suggestion VARCHAR,                 -- JSON object
    updated_ns BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS incident_events (
    incident_id VARCHAR NOT NULL,
    time_ns BIGINT NOT NULL,
    event VARCHAR NOT NULL,
    detail VARCHAR NOT NULL
);

-- Trace detail looks spans up by trace_id. The ids are random, so zonemaps cannot prune
-- them, and a scan compares 32-character strings (140 ms at 10M spans), so it filters on
-- trace_key first, a BIGINT scan (about 15 ms at 10M). Schema v1-v3 had an ART index on
-- spans(trace_id) instead: every checkpoint rewrote it whole, so a checkpoint cost grew
-- with the table (160 ms at 6M spans, one every ~16 MiB of WAL) and ingest slowed as the
-- store filled. v4 drops it, and the migration fills trace_key for the rows already stored.
DROP INDEX IF EXISTS spans_trace_id;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS trace_key BIGINT;

-- Measured GPU energy per sample interval [start_ns, end_ns) of one GPU's energy counter,
-- split into what was attributed to requests in flight and what was idle (agent/finops/gpu.py).
CREATE TABLE IF NOT EXISTS gpu_energy (
    host VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    measured_wh DOUBLE NOT NULL,
    attributed_wh DOUBLE NOT NULL,
    idle_wh DOUBLE NOT NULL,
    idle_ns BIGINT NOT NULL,
    counter_resets INTEGER NOT NULL,
    PRIMARY KEY (host, device, start_ns)
);

-- Hourly rollup of span cost, tokens and energy for GET /api/v1/cost (agent/store/costs.py).
-- Rebuilt hour by hour from spans. Spans received after meta 'cost_rollup_received_ns'
-- are not in it yet and are added from the spans table at query time.
CREATE TABLE IF NOT EXISTS cost_hourly (
    hour_ns BIGINT NOT NULL,
    service VARCHAR NOT NULL,
    team VARCHAR,
    model VARCHAR,
    provider VARCHAR,
    host VARCHAR,
    requests BIGINT NOT NULL,
    priced_requests BIGINT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    usd DOUBLE,
    energy_wh DOUBLE,
    energy_wh_measured DOUBLE,
    energy_wh_estimated DOUBLE,
    energy_requests BIGINT NOT NULL,
    co2e_g DOUBLE,
    co2e_requests BIGINT NOT NULL,
    token_energy_wh DOUBLE,
    token_energy_tokens BIGINT
);

-- Streaming anomaly scores (agent/analysis/series_scoring.py) at or above [anomaly] threshold: one
-- row per scored series and bucket. Schema v2.
CREATE TABLE IF NOT EXISTS anomalies (
    series VARCHAR NOT NULL,            -- stable identity of the scored series
    time_ns BIGINT NOT NULL,            -- bucket start
    layer VARCHAR NOT NULL,
    signal VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    service VARCHAR,
    host VARCHAR,
    device VARCHAR,
    labels VARCHAR NOT NULL,            -- JSON object
    value DOUBLE NOT NULL,
    score DOUBLE NOT NULL,
    received_ns BIGINT NOT NULL,        -- when it was scored (retention, like spans/samples)
    PRIMARY KEY (series, time_ns)
);

-- OTLP log records and GenAI events (agent/store/logs.py). Schema v3.
CREATE TABLE IF NOT EXISTS logs (
    time_ns BIGINT NOT NULL,            -- the record's time, else when it was observed
    trace_id VARCHAR,                   -- NULL when the record carries no span context
    span_id VARCHAR,
    service VARCHAR NOT NULL,
    severity_number INTEGER NOT NULL,
    severity_text VARCHAR,
    event_name VARCHAR,                 -- gen_ai.choice, exception, ...
    error_type VARCHAR,                 -- exception.type of an exception log
    body VARCHAR,                       -- JSON value, content redacted unless capture is on
    attributes VARCHAR NOT NULL,        -- JSON object, content redacted unless capture is on
    resource VARCHAR NOT NULL,          -- JSON object
    span_event BOOLEAN NOT NULL,        -- an event of a span (sent with traces), not a log
    received_ns BIGINT NOT NULL,
    trace_key BIGINT                    -- as spans.trace_key
);

-- Trace detail looks a trace's logs up as its spans (v1-v3: an index, like spans').
DROP INDEX IF EXISTS logs_trace_id;
ALTER TABLE logs ADD COLUMN IF NOT EXISTS trace_key BIGINT;
