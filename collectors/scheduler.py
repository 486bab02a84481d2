"""CollectorScheduler: runs collectors on their intervals without letting one hold up another.

``poll_once(now_ns)`` is the whole scheduling step and is public so tests and the runner drive
it with explicit times (R14): it runs what is due and waits for it. ``start()`` adds a ticker
thread that calls ``launch_due`` instead, the same step without the wait: each due collector
runs on its own, so a slow target never delays another's start (no head-of-line blocking),
and samples reach the sink through a bounded backlog drained by a sink thread. Each collect
runs in a worker thread bounded by its timeout; a slow, dead or garbage-returning target
costs only its own slot. After each run the scheduler emits, per collector,
``strata.collector.up`` (1/0), ``strata.collector.duration`` (s) and the cumulative
``strata.collector.errors``, with attribute ``collector=<name>``, through the same sink as
the collected samples.

Scheduling rules:
- first run at ``start + jitter * U(0, interval)`` (seeded), so targets do not fire together;
- after a success the next run keeps the phase (``next += interval``);
- after ``n >= 2`` consecutive failures the next run waits
  ``min(interval * 2**(n-1), max_backoff_s)``; one failure keeps the normal interval so
  ``up=0`` shows within one interval (RELIABILITY C1);
- ``CollectorUnavailable`` turns the collector off after one log line;
- a collector whose previous run is still stuck is not started again (that counts as a
  failure), so a hung target holds at most one worker thread;
- failure log lines are rate-limited to one per collector per minute of event time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strata.agent.errors import CollectError, CollectorUnavailable
from strata.agent.model import Layer, Sample
from strata.agent.units import MINUTE_NS, NS_PER_S

if TYPE_CHECKING:  # typing only: the scheduler needs no collector code at run time
    from strata.collectors.base import Collector

__all__ = ["CollectorResult", "CollectorScheduler", "PollReport"]

logger = logging.getLogger(__name__)

SINK_BACKLOG = 64  # poll batches waiting for the sink once the ticker runs

DEFAULT_INTERVAL_S = 15.0
_LOG_EVERY_NS = MINUTE_NS


@dataclass(frozen=True, slots=True)
class CollectorResult:
    """What happened to one collector in one poll."""

    name: str
    up: bool
    samples: int
    duration_s: float
    error: str | None = None
    disabled: bool = False  # turned off for good (CollectorUnavailable)


@dataclass(frozen=True, slots=True)
class PollReport:
    """The collectors that ran in one ``poll_once`` (collectors not due are not listed)."""

    now_ns: int
    results: tuple[CollectorResult, ...]
    samples: int  # handed to the sink, self-metrics included

    def result(self, name: str) -> CollectorResult | None:
        return next((r for r in self.results if r.name == name), None)


@dataclass(slots=True)
class _State:
    collector: Collector
    interval_ns: int
    timeout_s: float
    next_due_ns: int | None = None
    failures: int = 0
    errors_total: int = 0
    disabled: bool = False
    in_flight: Future[Sequence[Sample]] | None = None
    last_log_ns: int | None = None
    started: dict[str, float] = field(default_factory=dict)
    busy: bool = False  # a ticker-launched run (collect + result handling) is under way


class CollectorScheduler:
    """Polls collectors concurrently on per-collector intervals."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        sink: Callable[[Sequence[Sample]], None],
        *,
        intervals: Mapping[str, float] | None = None,
        timeout_s: float = 10.0,
        timeouts: Mapping[str, float] | None = None,
        default_interval_s: float = DEFAULT_INTERVAL_S,
        jitter: float = 1.0,
        max_backoff_s: float = 300.0,
        clock: Callable[[], int] = time.time_ns,
        seed: int = 0,
        host: str | None = None,
    ) -> None:
        """Create the scheduler; nothing runs until ``poll_once`` or ``start``.

        Args:
            collectors: in opening order; ``stop`` closes them in reverse.
            sink: receives each poll's samples (collected plus self-metrics) in one call.
            intervals: seconds between runs by collector name; others use
                ``default_interval_s``.
            timeout_s: default bound on one ``collect`` call (capped at the interval).
            timeouts: per-collector timeouts by name.
            jitter: fraction of the interval over which first runs are spread (0: all at once).
            max_backoff_s: cap on the delay after repeated failures.
            clock: ns since the epoch, read only by the ticker thread.
            seed: seeds the start jitter, so schedules are reproducible.
            host: put on the self-metric samples.
        """
        names = [c.name for c in collectors]
        if len(set(names)) != len(names):
            msg = f"collector names must be unique, got {names}"
            raise ValueError(msg)
        intervals = intervals or {}
        timeouts = timeouts or {}
        self._states: list[_State] = []
        for c in collectors:
            interval_s = intervals.get(c.name, default_interval_s)
            if interval_s <= 0:
                msg = f"interval for {c.name} must be > 0 s, got {interval_s}"
                raise ValueError(msg)
            timeout = min(timeouts.get(c.name, timeout_s), interval_s)
            self._states.append(_State(c, int(interval_s * NS_PER_S), timeout))
        self._sink = sink
        self._jitter = jitter
        self._max_backoff_ns = int(max_backoff_s * NS_PER_S)
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - scheduling jitter, not security
        self._host = host
        self._pool = ThreadPoolExecutor(
            max_workers=len(self._states) + 1, thread_name_prefix="strata-collect"
        )
        # The ticker launches each due collector as its own run here, so one slow target
        # never delays the start of another (no head-of-line blocking, RELIABILITY C2/L4).
        self._runs = ThreadPoolExecutor(
            max_workers=len(self._states) + 1, thread_name_prefix="strata-collect-run"
        )
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when a run ends or on stop: the ticker re-plans
        self._thread: threading.Thread | None = None
        # Once started, the ticker hands samples to a sink thread through this bounded
        # backlog, so a slow sink (a store busy committing ingest) never delays the next
        # scrape (RELIABILITY L4: scrape-start jitter).
        self._backlog: queue.Queue[list[Sample] | None] = queue.Queue(maxsize=SINK_BACKLOG)
        self._sink_thread: threading.Thread | None = None
        self.sink_dropped = 0
        self._closed = False
        self._lock = threading.Lock()

    # -- the scheduling step ---------------------------------------------------------------

    def poll_once(self, now_ns: int) -> PollReport:
        """Run every collector that is due at *now_ns*, concurrently, and wait for them.

        Returns after the slowest due collector finished or hit its timeout. Never raises
        for a collector's failure; the sink's own exceptions are logged and swallowed.
        """
        with self._lock:
            due = [s for s in self._states
                   if not s.disabled and not s.busy and self._is_due(s, now_ns)]
            started = time.monotonic()
            running: list[tuple[_State, Future[Sequence[Sample]] | None]] = []
            for state in due:
                if state.in_flight is not None and not state.in_flight.done():
                    running.append((state, None))  # still stuck in its previous run
                    continue
                state.in_flight = self._pool.submit(_timed, state.collector, now_ns, state.started)
                running.append((state, state.in_flight))
            samples: list[Sample] = []
            results: list[CollectorResult] = []
            for state, future in sorted(running, key=lambda item: item[0].timeout_s):
                result, collected = self._finish(state, future, started, now_ns)
                results.append(result)
                samples.extend(collected)
                if not result.disabled:
                    samples.extend(self._self_metrics(state, result, now_ns))
            if samples:
                self._deliver(samples)
            return PollReport(now_ns, tuple(results), len(samples))

    def launch_due(self, now_ns: int) -> int:
        """Start every collector due at *now_ns* in the background; returns how many.

        The ticker's step: unlike ``poll_once`` it does not wait, so each collector's start
        time depends only on its own schedule. Results go to the sink as each run ends.
        """
        with self._lock:
            due = [s for s in self._states
                   if not s.disabled and not s.busy and self._is_due(s, now_ns)]
            for state in due:
                state.busy = True
                self._runs.submit(self._run_one, state, now_ns)
            return len(due)

    def _run_one(self, state: _State, now_ns: int) -> None:
        try:
            started = time.monotonic()
            future: Future[Sequence[Sample]] | None = None
            if state.in_flight is None or state.in_flight.done():
                state.in_flight = self._pool.submit(_timed, state.collector, now_ns,
                                                    state.started)
                future = state.in_flight
            result, collected = self._finish(state, future, started, now_ns)
            samples = list(collected)
            if not result.disabled:
                samples.extend(self._self_metrics(state, result, now_ns))
            if samples:
                self._deliver(samples)
        except Exception:  # a run must never kill the scheduler (logged with traceback)
            logger.exception("collector run %s failed", state.collector.name)
        finally:
            state.busy = False
            self._wake.set()

    def _deliver(self, samples: list[Sample]) -> None:
        """To the sink: directly when driven by hand, through the backlog once started."""
        if self._sink_thread is None:
            self._write(samples)
            return
        try:
            self._backlog.put_nowait(samples)
        except queue.Full:
            try:
                oldest = self._backlog.get_nowait()
            except queue.Empty:
                oldest = None
            self.sink_dropped += len(oldest or [])
            logger.warning("collector sink %d batches behind; oldest %d samples dropped",
                           SINK_BACKLOG, len(oldest or []))
            self._backlog.put_nowait(samples)

    def _write(self, samples: list[Sample]) -> None:
        try:
            self._sink(samples)
        except Exception:  # a failing sink must not stop polling (logged with traceback)
            logger.exception("collector sink failed; %d samples dropped", len(samples))

    def _drain(self) -> None:
        while (samples := self._backlog.get()) is not None:
            self._write(samples)

    def _is_due(self, state: _State, now_ns: int) -> bool:
        if state.next_due_ns is None:
            offset = int(self._rng.random() * self._jitter * state.interval_ns)
            state.next_due_ns = now_ns + offset
        return now_ns >= state.next_due_ns

    def _finish(
        self,
        state: _State,
        future: Future[Sequence[Sample]] | None,
        started: float,
        now_ns: int,
    ) -> tuple[CollectorResult, Sequence[Sample]]:
        name = state.collector.name
        if future is None:
            return self._failed(state, now_ns, 0.0, "previous collect still running"), ()
        remaining = state.timeout_s - (time.monotonic() - started)
        try:
            collected = future.result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            reason = f"timed out after {state.timeout_s}s"
            return self._failed(state, now_ns, state.timeout_s, reason), ()
        except CollectorUnavailable as exc:
            state.disabled = True
            logger.warning("collector %s is off: %s", name, exc.reason)
            duration = state.started.get("duration", 0.0)
            return CollectorResult(name, False, 0, duration, exc.reason, disabled=True), ()
        except CollectError as exc:
            duration = state.started.get("duration", 0.0)
            return self._failed(state, now_ns, duration, exc.reason), ()
        except Exception as exc:  # noqa: BLE001 - a broken collector must not stop the others
            duration = state.started.get("duration", 0.0)
            return self._failed(state, now_ns, duration, f"{type(exc).__name__}: {exc}"), ()
        state.in_flight = None
        state.failures = 0
        self._advance(state, now_ns, state.interval_ns)
        duration = state.started.get("duration", 0.0)
        return CollectorResult(name, True, len(collected), duration), collected

    def _failed(self, state: _State, now_ns: int, duration: float, reason: str) -> CollectorResult:
        state.failures += 1
        state.errors_total += 1
        if state.in_flight is not None and state.in_flight.done():
            state.in_flight = None
        delay = state.interval_ns
        if state.failures >= 2:
            delay = min(state.interval_ns * 2 ** (state.failures - 1), self._max_backoff_ns)
            delay = max(delay, state.interval_ns)
        self._advance(state, now_ns, delay)
        if state.last_log_ns is None or now_ns - state.last_log_ns >= _LOG_EVERY_NS:
            state.last_log_ns = now_ns
            logger.warning(
                "collector %s failed (%d in a row): %s; next try in %.1fs",
                state.collector.name,
                state.failures,
                reason,
                delay / NS_PER_S,
            )
        return CollectorResult(state.collector.name, False, 0, duration, reason)

    @staticmethod
    def _advance(state: _State, now_ns: int, delay_ns: int) -> None:
        if delay_ns == state.interval_ns and state.next_due_ns is not None:
            nxt = state.next_due_ns + delay_ns  # keep the phase
            if nxt <= now_ns:
                nxt = now_ns + delay_ns - (now_ns - state.next_due_ns) % delay_ns
            state.next_due_ns = nxt
        else:
            state.next_due_ns = now_ns + delay_ns

    def _self_metrics(self, state: _State, result: CollectorResult, now_ns: int) -> list[Sample]:
        attrs = {"collector": result.name}
        up_attrs = attrs if result.up else {**attrs, "reason": (result.error or "")[:200]}
        return [
            _sample(
                "strata.collector.up", 1.0 if result.up else 0.0, "1", up_attrs, now_ns, self._host
            ),
            _sample("strata.collector.duration", result.duration_s, "s", attrs, now_ns, self._host),
            _sample(
                "strata.collector.errors",
                float(state.errors_total),
                "{error}",
                attrs,
                now_ns,
                self._host,
            ),
        ]

    def next_due_ns(self) -> int | None:
        """The earliest time an idle collector is due, or None if none is scheduled yet."""
        dues = [s.next_due_ns for s in self._states
                if not s.disabled and not s.busy and s.next_due_ns is not None]
        return min(dues) if dues else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the ticker and sink threads (idempotent). The ticker only calls
        ``launch_due``."""
        if self._thread is not None or self._closed:
            return
        self._sink_thread = threading.Thread(target=self._drain, name="strata-collect-sink",
                                             daemon=True)
        self._sink_thread.start()
        self._thread = threading.Thread(target=self._tick, name="strata-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the ticker, close collectors in reverse order. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sink_thread is not None:
            with contextlib.suppress(queue.Full):  # a stuck sink: it is a daemon thread
                self._backlog.put(None, timeout=timeout_s)
            self._sink_thread.join(timeout_s)
        for state in reversed(self._states):
            try:
                state.collector.close()
            except Exception:  # closing one collector must not skip the rest (logged)
                logger.exception("closing collector %s failed", state.collector.name)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._runs.shutdown(wait=False, cancel_futures=True)

    def _tick(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            self.launch_due(now)
            nxt = self.next_due_ns()
            wait_s = 1.0 if nxt is None else min(max((nxt - self._clock()) / NS_PER_S, 0.0), 1.0)
            self._wake.wait(wait_s)
            self._wake.clear()


def _timed(collector: Collector, now_ns: int, slot: dict[str, float]) -> Sequence[Sample]:
    begin = time.perf_counter()
    try:
        return collector.collect(now_ns)
    finally:
        slot["duration"] = time.perf_counter() - begin


def _sample(
    name: str, value: float, unit: str, attrs: dict[str, str], now_ns: int, host: str | None
) -> Sample:
    return Sample(
        name=name,
        value=value,
        unit=unit,
        layer=Layer.INFRASTRUCTURE,
        time_unix_nano=now_ns,
        attributes=attrs,
        canonical=name,
        host=host,
        service="strata",
    )
