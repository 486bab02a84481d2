"""Storage: the DuckDB store, its schema, recovery and memory limit."""
