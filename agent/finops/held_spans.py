"""Forwarding each span once, with its final cost: spans only the GPU pass can price wait.

A sidecar forwards what it commits (``[forward]``, ``[forward.clickhouse]``) with the cost and
energy it attached, and the upstream keeps what it first receives (the hub's ClickHouse
tables are append-only). Ingest prices hosted-API spans at once (``IngestPricer``), but a
span it leaves unpriced that names a model or a GPU may have run on a local GPU, whose
GPU-time cost and measured energy only the GPU pass (``finops.gpu``) gives, once the energy
samples after the span's end have arrived. So the records exporters get such a span not at
commit (``split_at_commit``) but from the store, ``hold_ns`` after it was received and after
the passes run meanwhile (``HeldSpans.forward_due``): with measured figures where a GPU with
an energy counter served it, unpriced otherwise (a model missing from the price table).

Durable: held spans are in the store, and ``meta`` keeps the receipt time forwarded up to,
so a restart forwards what was held (a crash between an export and its mark re-sends that
batch: at least once). Which spans were held is decided again from the stored span by the
same ingest pricer, so a span ingest priced was forwarded at commit and is not sent again,
even when the GPU pass re-priced it later. A price file changed between commit and
forwarding can move a span across that line (sent twice, or never). A pass re-run after
forwarding (late samples) corrects the sidecar's figures, not the upstream's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

from strata.agent.model import SpanRecord
from strata.agent.store import meta_value, set_meta
from strata.agent.store.db import CostColumns, DuckDBStore
from strata.agent.store.spans import spans_received_between
from strata.analytics.attribution import gpu_keys_of
from strata.exporters.base import Exporter, Records

__all__ = ["MARK_KEY", "HeldSpans", "awaits_gpu_pass", "split_at_commit"]

logger = logging.getLogger(__name__)

MARK_KEY: Final = "forward_held_received_ns"
BATCH: Final = 5_000

Pricer = Callable[[Sequence[SpanRecord]], Sequence[CostColumns]]


def awaits_gpu_pass(span: SpanRecord, cost: CostColumns) -> bool:
    """True when ingest could not price *span* (no cost, no energy) and it names a model or
    a GPU: the GPU pass may price it."""
    return cost[0] is None and cost[2] is None and (
        span.model is not None or bool(gpu_keys_of(span)))


def split_at_commit(
    spans: Sequence[SpanRecord], costs: Sequence[CostColumns]
) -> tuple[list[SpanRecord], list[CostColumns]]:
    """The committed spans to forward now, with their costs (the others are held)."""
    now = [i for i, (s, c) in enumerate(zip(spans, costs, strict=True))
           if not awaits_gpu_pass(s, c)]
    return [spans[i] for i in now], [costs[i] for i in now]


class HeldSpans:
    """The held spans of one store, forwarded once they are *hold_ns* old.

    Args:
        store: the agent's store (spans, and ``meta`` for the mark).
        price: the ingest pricer (to tell again which spans were held).
        hold_ns: how long after receipt a held span is forwarded.
        started_ns: for a store without a mark, when holding began (spans received before
            it were forwarded at commit).
    """

    def __init__(self, store: DuckDBStore, price: Pricer, *, hold_ns: int,
                 started_ns: int) -> None:
        self._store = store
        self._price = price
        self.hold_ns = hold_ns
        found = meta_value(store.cursor(), MARK_KEY)
        self.mark_ns = started_ns - 1 if found is None else int(found)  # marks are inclusive
        if found is None:  # stored now: a restart before anything is due keeps it
            self._set_mark(self.mark_ns)

    def forward_due(self, exporters: Sequence[Exporter[Records]], *, now_ns: int) -> int:
        """Export the held spans received before ``now_ns - hold_ns`` and not forwarded yet,
        moving the mark after each batch; how many spans were exported."""
        until = now_ns - self.hold_ns
        if until <= self.mark_ns or not exporters:
            return 0
        sent = 0
        while batch := spans_received_between(self._store.cursor(), self.mark_ns, until,
                                              limit=BATCH):
            spans = [span for span, _, _ in batch]
            held = [i for i, c in enumerate(self._price(spans)) if awaits_gpu_pass(spans[i], c)]
            if held:
                records = Records([spans[i] for i in held], (), [batch[i][1] for i in held])
                for exporter in exporters:
                    exporter.export([records])
                sent += len(held)
            self._set_mark(batch[-1][2])
        self._set_mark(until)
        if sent:
            logger.debug("forwarded %d spans held for the GPU pass", sent)
        return sent

    def _set_mark(self, received_ns: int) -> None:
        self.mark_ns = received_ns
        with self._store.transaction() as cur:
            set_meta(cur, MARK_KEY, str(received_ns))
