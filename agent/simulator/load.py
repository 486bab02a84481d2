"""Fast path from the simulator into a store: decode the real OTLP bodies, write directly.

The requests are serialised and decoded with ``strata.agent.ingest.otlp_codec`` exactly as the
receiver
would, and deployments are inferred with ``strata.agent.ingest.changes.ChangeTracker`` as the
writer does,
so a store filled this way holds what an agent fed over OTLP/HTTP would hold.
"""

from __future__ import annotations

from collections.abc import Iterable

from strata.agent.ingest.changes import ChangeTracker
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import decode_metrics_request, decode_trace_request
from strata.agent.model import Sample, SpanRecord
from strata.agent.simulator.stack import SimBatch
from strata.agent.store.db import DuckDBStore


def load_batches(
    store: DuckDBStore,
    batches: Iterable[SimBatch],
    *,
    tracker: ChangeTracker | None = None,
    chunk: int = 30,
) -> ChangeTracker:
    """Write *batches* into *store*, *chunk* steps per transaction.

    Args:
        store: the destination.
        batches: simulator steps, in event-time order.
        tracker: change detection state to continue (a new one when None).
        chunk: steps per ``write_batch`` call.

    Returns:
        The change tracker, to continue loading later batches of the same run.
    """
    tracker = tracker or ChangeTracker()
    policy = IngestPolicy(salt=store.salt)
    spans: list[SpanRecord] = []
    samples: list[Sample] = []
    for steps, batch in enumerate(batches, start=1):
        spans.extend(decode_trace_request(batch.traces.SerializeToString(), is_json=False,
                                          policy=policy).spans)
        samples.extend(decode_metrics_request(batch.metrics.SerializeToString(),
                                              is_json=False).samples)
        if steps % chunk == 0:
            store.write_batch(spans, samples, tracker.observe(spans), received_ns=batch.time_ns)
            spans, samples = [], []
    if spans or samples:
        store.write_batch(spans, samples, tracker.observe(spans), received_ns=0)
    return tracker
