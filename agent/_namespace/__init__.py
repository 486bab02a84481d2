"""Strata: an observability and AIOps agent for generative-AI stacks.

This file is the installed top-level package ``strata`` (``package-dir`` in pyproject maps
it here); the repository folders install beneath it as ``strata.agent``, ``strata.analytics``,
``strata.collectors`` and ``strata.exporters``, so nothing generic lands at top level.

The SDK's entry points are re-exported for apps: ``from strata import init, workflow, task,
step``. They load on first use, so ``import strata.agent.store`` (the agent's own imports)
does not pull in the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.agent import __version__

if TYPE_CHECKING:
    from strata.agent.sdk import init, shutdown, step, task, workflow

__all__ = ["__version__", "init", "shutdown", "step", "task", "workflow"]
_SDK_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from strata.agent import sdk

        return getattr(sdk, name)
    msg = f"module 'strata' has no attribute {name!r}"
    raise AttributeError(msg)
