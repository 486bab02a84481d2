"""Analysis: the analyzer that runs detectors over stored data, per-series scoring, the event-time
window."""
