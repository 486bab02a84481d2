"""Waiting in tests: one polling helper, and loose wall-clock bounds.

Tests synchronise on an observable condition (a counter, a stored row, a readiness endpoint)
through ``wait_until``, never on a fixed sleep. Wall-clock assertions only check that nothing
hangs or stalls: ``loose(spec_s)`` turns a RELIABILITY figure into a bound SLACK times wider,
so a busy CI machine does not fail them; the figures themselves are measured in benchmarks/.
``STRATA_TEST_SLACK=1`` checks the spec figures as written (on a quiet machine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

SLACK = float(os.environ.get("STRATA_TEST_SLACK", "5"))


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, *,
               interval_s: float = 0.05) -> T:
    """Poll *predicate* until it returns a truthy value, and return that value.

    Raises:
        AssertionError: not truthy within *timeout_s*; the message names *what* and the
            predicate's last value.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; "
                                 f"last value: {value!r:.500}")
        time.sleep(interval_s)  # the poll interval: the deadline above bounds the wait


def responds(url: str) -> int | None:
    """The status of ``GET url``, or None while nothing answers: a readiness predicate."""
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return None


def loose(spec_s: float) -> float:
    """A wall-clock bound for a figure of *spec_s* seconds: SLACK times the figure."""
    return spec_s * SLACK
