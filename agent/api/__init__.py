"""The local HTTP API: one router per resource."""
