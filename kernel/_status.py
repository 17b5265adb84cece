"""Work stages and the status a Work reports, as in Lightning App."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class WorkStageStatus:
    """The stages of a Work's latest call. The values are plain strings, as in Lightning App."""

    NOT_STARTED = "not_started"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class WorkPendingReason:
    """Why a Work's call is ``pending`` (Lightning App's values, its spelling kept)."""

    IMAGE_BUILDING = "image_building"
    REQUESTING_RESOURCE = "requesting_ressource"


class WorkFailureReasons:
    """Why a Work's call ``failed`` or had to start again, where the kernel says so (Lightning App's values,
    its spelling kept)."""

    TIMEOUT = "timeout"
    SPOT_RETRIVAL = "spot_retrival"
    """The machine under the Work was taken away (a spot reclaim, a Ray node lost): the call is
    ``pending`` with this reason while the Work is relaunched elsewhere, ``failed`` with it once the
    executor's ``max_interruptions`` are spent."""
    USER_EXCEPTION = "user_exception"
    INVALID_RETURN_VALUE = "invalid_return_value"


FINISHED_STAGES = frozenset({WorkStageStatus.SUCCEEDED, WorkStageStatus.FAILED, WorkStageStatus.STOPPED})


@dataclass(frozen=True)
class WorkStatus:
    stage: str = WorkStageStatus.NOT_STARTED
    timestamp: float | None = None
    reason: str = ""
    message: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> WorkStatus:
        if not d:
            return cls()
        return cls(
            stage=d.get("stage", WorkStageStatus.NOT_STARTED),
            timestamp=d.get("timestamp"),
            reason=d.get("reason", ""),
            message=d.get("message", ""),
        )
