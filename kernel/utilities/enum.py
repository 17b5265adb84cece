"""Lightning App's ``lightning.app.utilities.enum`` module path: the Work stages and reasons, the
app's stages, and ``make_status``."""

from __future__ import annotations

import enum
import time
from typing import Any

from .._status import WorkFailureReasons, WorkPendingReason, WorkStageStatus

__all__ = ["AppStage", "WorkFailureReasons", "WorkPendingReason", "WorkStageStatus", "make_status"]


class AppStage(enum.Enum):
    """The stages of a Lightning App (its values, for code that compares them)."""

    BLOCKING = "blocking"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    FAILED = "failed"


def make_status(stage: str, message: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A Work status as a dict (``stage``, ``timestamp``, and ``message``/``reason`` when given)."""
    status: dict[str, Any] = {"stage": stage, "timestamp": time.time()}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    return status
