"""Contract tests that third-party stores (and executors) subclass to prove they behave.

The contracts need pytest and are imported on first use, so that ``lightning_kernel.testing`` (and
the small apps in it, which workers on other hosts unpickle) imports without pytest. ``EmptyFlow`` and
``EmptyWork`` (also as ``lightning_kernel.testing.helpers``, Lightning App's path) do nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .helpers import EmptyFlow, EmptyWork

if TYPE_CHECKING:
    from ._executor import ExecutorContract
    from ._store import EventStoreContract

__all__ = ["EmptyFlow", "EmptyWork", "EventStoreContract", "ExecutorContract"]


def __getattr__(name: str) -> Any:
    if name == "ExecutorContract":
        from ._executor import ExecutorContract

        return ExecutorContract
    if name == "EventStoreContract":
        from ._store import EventStoreContract

        return EventStoreContract
    raise AttributeError(f"module 'lightning_kernel.testing' has no attribute {name!r}")
