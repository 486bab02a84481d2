"""Analytics: correlation, attribution, detection and incidents over stored telemetry."""
