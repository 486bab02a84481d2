"""Ingest: OTLP decoding, normalisation to layers, change detection, the batch writer."""
