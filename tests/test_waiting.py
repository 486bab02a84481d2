"""tests/waiting.py: wait_until returns the predicate's value or fails naming what it waited for."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import wait_until


def test_returns_the_first_truthy_value() -> None:
    values = iter([0, [], None, [3]])
    assert wait_until(lambda: next(values), 5, "a list", interval_s=0) == [3]


def test_timeout_names_what_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(AssertionError, match=r"waiting for the queue to drain; last value: 0"):
        wait_until(lambda: next(counter) * 0, 0.05, "the queue to drain", interval_s=0.01)
