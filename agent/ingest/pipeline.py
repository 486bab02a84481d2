"""The transport-neutral half of the OTLP receivers (HTTP in ``agent/api/otlp.py``, gRPC in
``agent/ingest/grpc_receiver.py``).

One request: admission (at most ``MAX_IN_FLIGHT`` at once, both transports together) ->
read the body -> decompress and decode (``agent.decoder``: a thread, or a worker process
that hands over Arrow columns) -> ``writer.submit`` -> wait for
the COMMIT -> counters -> the Export*ServiceResponse bytes (with ``partial_success`` when
items were rejected). Each transport maps the ``Outcome`` to its own status codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from strata.agent.errors import BackpressureError, DecodeError, StoreFailedError
from strata.agent.ingest.decoding import Signal
from strata.agent.ingest.otlp_codec import BodyTooLarge, encode_partial_success
from strata.agent.ingest.otlp_logs import encode_logs_partial_success

if TYPE_CHECKING:
    from strata.agent.config import Settings
    from strata.agent.ingest.decoding import Decoder
    from strata.agent.ingest.otlp_codec import DecodeResult
    from strata.agent.ingest.stats import ReceiverStats
    from strata.agent.ingest.writer import BatchWriter
    from strata.agent.store.db import CostColumns

MAX_IN_FLIGHT = 64


class IngestHost(Protocol):
    """What the receivers need of the process they serve: the agent or the hub."""

    grpc_port: int | None  # set by the gRPC receiver once bound

    @property
    def settings(self) -> Settings: ...
    @property
    def decoder(self) -> Decoder: ...
    @property
    def writer(self) -> BatchWriter: ...
    @property
    def receiver_stats(self) -> ReceiverStats: ...
    def after_commit(self, result: DecodeResult,
                     costs: Sequence[CostColumns] | None = None) -> None: ...


class Outcome(Enum):
    OK = "ok"  # committed; the body is the Export*ServiceResponse
    TOO_LARGE = "too_large"  # over the body limit after decompression
    UNDECODABLE = "undecodable"
    BUSY = "busy"  # too many in flight or the write queue is full: retry after a while
    STORE_UNAVAILABLE = "store_unavailable"  # the commit failed: retry after a while


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    body: bytes = b""
    message: str = ""
    retry_after_s: int | None = None


class OtlpPipeline:
    """One per receiver; the in-flight bound and the counters are the agent's
    ``receiver_stats``, so both transports share them."""

    def __init__(self, agent: IngestHost) -> None:
        self._agent = agent
        self.stats = agent.receiver_stats
        self.limit = agent.settings.max_body_bytes

    async def export(
        self, read_body: Callable[[], Awaitable[bytes]], *, signal: Signal, encoding: str,
        as_json: bool,
    ) -> Reply:
        """Run one export. *read_body* may raise ``BodyTooLarge``; *encoding* is the body's
        compression (``gzip``, ``identity`` or ``""``)."""
        stats = self.stats
        if stats.in_flight >= MAX_IN_FLIGHT:
            stats.throttled += 1
            return Reply(Outcome.BUSY, message="too many requests in flight", retry_after_s=1)
        stats.in_flight += 1
        try:
            return await self._export(read_body, signal, encoding, as_json)
        finally:
            stats.in_flight -= 1

    async def _export(
        self, read_body: Callable[[], Awaitable[bytes]], signal: Signal, encoding: str,
        as_json: bool,
    ) -> Reply:
        stats, agent = self.stats, self._agent
        try:
            raw = await read_body()
            decoded = await agent.decoder.decode(raw, encoding, as_json=as_json, signal=signal)
        except BodyTooLarge:
            stats.too_large += 1
            return Reply(Outcome.TOO_LARGE, message=f"body over the {self.limit} byte limit")
        except DecodeError as exc:
            stats.bad_requests += 1
            return Reply(Outcome.UNDECODABLE, message=str(exc)[:500])
        except BackpressureError as exc:  # a decode worker died
            stats.throttled += 1
            return Reply(Outcome.BUSY, message=str(exc), retry_after_s=exc.retry_after_s)
        result = decoded.result
        try:
            future = agent.writer.submit(
                # records only for a store that takes them (the hub's: no span_table)
                result.spans if decoded.span_table is None else (), result.samples,
                logs=result.logs, span_table=decoded.span_table)
            await asyncio.wrap_future(future)
        except BackpressureError as exc:
            stats.throttled += 1
            outcome = Outcome.STORE_UNAVAILABLE if isinstance(exc, StoreFailedError) else (
                Outcome.BUSY)
            return Reply(outcome, message=str(exc), retry_after_s=exc.retry_after_s)
        except Exception:  # noqa: BLE001 - a failed commit is retryable, never a success
            stats.throttled += 1
            return Reply(Outcome.STORE_UNAVAILABLE, message="store unavailable", retry_after_s=5)
        stats.rejected_items += result.rejected
        stats.redaction_failures += result.redaction_failures
        stats.accepted_points += len(result.samples)
        stats.accepted_spans += decoded.span_count
        if signal is Signal.LOGS:  # (a trace's logs are its spans' events: not counted)
            stats.accepted_logs += len(result.logs)
            stats.rejected_logs += result.rejected
            body = encode_logs_partial_success(result.rejected, result.error_message,
                                               as_json=as_json)
            return Reply(Outcome.OK, body=body)  # logs are not forwarded (Records has none)
        # Off the event loop: a forwarder encodes and fsyncs its queue here, which would
        # stall every other request's reply meanwhile.
        await asyncio.to_thread(agent.after_commit, result, decoded.costs)
        body = encode_partial_success(result.rejected, result.error_message,
                                      metrics=signal is Signal.METRICS, as_json=as_json)
        return Reply(Outcome.OK, body=body)


__all__ = ["MAX_IN_FLIGHT", "IngestHost", "OtlpPipeline", "Outcome", "Reply", "Signal"]
