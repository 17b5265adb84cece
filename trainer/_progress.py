"""PL's loop progress counters (``loop.batch_progress.total.completed``...), for code that reads them.

The training loop keeps plain integers on its hot path; its ``batch_progress`` and ``epoch_progress``
are views built from them when read. The evaluation loops count batches here as they go.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProgressCounts:
    """How many items were ``ready``, ``started``, ``processed`` and ``completed`` (PL's ``_ProcessedTracker``)."""

    ready: int = 0
    started: int = 0
    processed: int = 0
    completed: int = 0

    def reset(self) -> None:
        self.ready = self.started = self.processed = self.completed = 0


@dataclass
class Progress:
    """Counts over the whole run (``total``) and over the current epoch or loop run (``current``)."""

    total: ProgressCounts = field(default_factory=ProgressCounts)
    current: ProgressCounts = field(default_factory=ProgressCounts)

    def reset(self) -> None:
        self.total.reset()
        self.current.reset()

    def reset_on_run(self) -> None:
        self.current.reset()


@dataclass
class BatchProgress(Progress):
    """``Progress`` of batches, and whether the last one seen was its loader's last."""

    is_last_batch: bool = False

    def reset(self) -> None:
        super().reset()
        self.is_last_batch = False

    def reset_on_run(self) -> None:
        super().reset_on_run()
        self.is_last_batch = False

    def started(self) -> None:
        for counts in (self.total, self.current):
            counts.ready += 1
            counts.started += 1

    def processed(self) -> None:
        self.total.processed += 1
        self.current.processed += 1

    def completed(self) -> None:
        self.total.completed += 1
        self.current.completed += 1


def counts(ready: int, processed: int, completed: int) -> ProgressCounts:
    return ProgressCounts(ready=ready, started=ready, processed=processed, completed=completed)
