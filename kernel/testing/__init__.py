"""Contract tests that third-party stores (and executors) subclass to prove they behave.

The contracts need pytest and are imported on first use, so that ``lightning_kernel.testing`` (and
the small apps in it, which workers on other hosts unpickle) imports without pytest. ``EmptyFlow`` and
``EmptyWork`` (also as ``lightning_kernel.testing.helpers``, Lightning App's path) do nothing.
``run_app_in_cloud`` is Lightning App's name, so that test modules importing it load; it runs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .helpers import EmptyFlow, EmptyWork

if TYPE_CHECKING:
    from ._executor import ExecutorContract
    from ._store import EventStoreContract

__all__ = ["EmptyFlow", "EmptyWork", "EventStoreContract", "ExecutorContract", "run_app_in_cloud"]


def run_app_in_cloud(app_folder: str, *args: Any, **kwargs: Any) -> Any:
    """Lightning App ran ``app_folder``'s app in its cloud; there is no such cloud here."""
    raise RuntimeError(
        f"run_app_in_cloud({app_folder!r}) ran the app in Lightning AI's cloud, which lightning-kernel has "
        "not: run it with `lightning-kernel run app` (on SSH hosts or a Ray cluster with its executors), "
        "and drive it with lightning_kernel.Client"
    )


def __getattr__(name: str) -> Any:
    if name == "ExecutorContract":
        from ._executor import ExecutorContract

        return ExecutorContract
    if name == "EventStoreContract":
        from ._store import EventStoreContract

        return EventStoreContract
    raise AttributeError(f"module 'lightning_kernel.testing' has no attribute {name!r}")
