"""lightning-kernel: Lightning Apps as an event-sourced microkernel.

Write ``LightningFlow`` and ``LightningWork`` classes as in Lightning App, then
``lightning-kernel run app app.py``; ``Client`` reads and drives the runs from Python.
"""

from ._app import LightningApp
from ._build_config import BuildConfig
from ._compute import CloudCompute
from ._flow import LightningFlow
from ._sdk import Client
from ._status import WorkStageStatus, WorkStatus
from ._work import LightningWork
from .storage import Drive, Path, Payload

__all__ = [
    "BuildConfig",
    "Client",
    "CloudCompute",
    "Drive",
    "LightningApp",
    "LightningFlow",
    "LightningWork",
    "Path",
    "Payload",
    "Replayer",
    "WorkStageStatus",
    "WorkStatus",
]


def __getattr__(name: str) -> object:
    # Replayer pulls in the fold and the events: only a replay pays for them.
    if name == "Replayer":
        from ._replay import Replayer

        return Replayer
    raise AttributeError(f"module 'lightning_kernel' has no attribute {name!r}")
