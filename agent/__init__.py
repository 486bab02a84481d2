"""Strata: an observability and AIOps sidecar for generative-AI stacks."""

__version__ = "0.1.0"
