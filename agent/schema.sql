-- Strata store schema, version 1. Applied by agent/store.py inside one transaction.
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
    received_ns BIGINT NOT NULL
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
