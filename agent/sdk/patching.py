"""Idempotent patching of client classes' methods, with a marker to undo it.

A wrapped method carries the original in ``__strata_wrapped__``; wrapping twice is a
no-op and :func:`unwrap` restores the original.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

MARKER = "__strata_wrapped__"


def wrap(cls: type, name: str, factory: Callable[[Any], Callable[..., Any]]) -> bool:
    """Replace ``cls.name`` by ``factory(original)`` unless already wrapped.

    Returns:
        True if the method was wrapped now, False if absent or already wrapped.
    """
    original = cls.__dict__.get(name)
    if original is None or getattr(original, MARKER, None) is not None:
        return False
    wrapper = factory(original)
    functools.update_wrapper(wrapper, original)
    setattr(wrapper, MARKER, original)
    setattr(cls, name, wrapper)
    return True


def unwrap(cls: type, name: str) -> None:
    """Restore ``cls.name`` if we wrapped it."""
    original = getattr(cls.__dict__.get(name), MARKER, None)
    if original is not None:
        setattr(cls, name, original)


def is_wrapped(cls: type, name: str) -> bool:
    """True when ``cls.name`` is one of our wrappers."""
    return getattr(cls.__dict__.get(name), MARKER, None) is not None
