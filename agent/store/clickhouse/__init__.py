"""ClickHouse as Strata's store at fleet scale (``strata hub``, ``[forward.clickhouse]``).

Tables are the OpenTelemetry Collector contrib ``clickhouseexporter`` schema plus Strata's
migration on top (``schema.sql``); ``engine`` runs the same statements on chdb (in-process)
or a ClickHouse server (clickhouse-connect).
"""
