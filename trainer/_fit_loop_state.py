"""What of the training loop goes into a checkpoint, in PyTorch Lightning's ``loops["fit_loop"]``
layout (so its checkpoints and ours load in either), plus what an exact mid-epoch resume needs."""

from __future__ import annotations

from typing import Any


class FitLoopState:
    """``state_dict``/``load_state_dict`` of ``FitLoop``: a mixin over its counters."""

    epoch_started: int
    epoch_processed: int
    epoch_completed: int
    global_step: int
    batches_that_stepped: int
    batches_done: int
    total_batch_idx: int
    is_last_batch: bool
    num_training_batches: int | float
    _batch_tail: bool
    _restart: dict[str, Any] | None
    _epoch_start_rng: dict[str, Any] | None
    _val_start_rng: dict[str, Any] | None

    def should_accumulate(self) -> bool:
        raise NotImplementedError

    def _val_pending(self) -> bool:
        """Saved after a batch's step but before the validation that batch triggers (a checkpoint from
        ``on_train_batch_end``): a resumed run must validate first, as the uninterrupted one did next."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """PL's ``loops["fit_loop"]`` layout, plus what an exact mid-epoch resume needs."""
        stepped = self.batches_that_stepped
        if self._batch_tail and not self.should_accumulate():
            stepped += 1  # the batch being finished will count once its tail has run
        epoch = {
            "ready": self.epoch_started,
            "started": self.epoch_started,
            "processed": self.epoch_processed,
            "completed": self.epoch_completed,
        }
        batch = {k: self.batches_done for k in ("ready", "started", "processed", "completed")}
        finished = self.batches_done > 0 and (
            self.is_last_batch or self.batches_done >= self.num_training_batches
        )
        steps = {"total": {"ready": self.global_step, "completed": self.global_step}}
        pending = self._val_pending()
        return {
            "state_dict": {},
            "epoch_progress": {"total": dict(epoch), "current": dict(epoch)},
            "epoch_loop.state_dict": {"_batches_that_stepped": stepped},
            "epoch_loop.batch_progress": {
                "total": {k: self.total_batch_idx + 1 for k in batch},
                "current": batch,
                "is_last_batch": finished,
            },
            "epoch_loop.automatic_optimization.optim_progress": {"optimizer": {"step": steps}},
            "epoch_loop.manual_optimization.optim_step_progress": steps,
            "lightning_kernel": {
                "epoch_start_rng": self._epoch_start_rng,
                "epoch_finished": finished,
                "val_pending": pending,
                # saved during a validation that the resumed run runs again: the RNG from before it
                "val_start_rng": self._val_start_rng if pending else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any], rng: dict[str, Any] | None = None) -> None:
        epoch = state["epoch_progress"]["current"]
        batch = state["epoch_loop.batch_progress"]
        ours = state.get("lightning_kernel", {})
        self.epoch_processed = int(epoch["processed"])
        self.epoch_completed = int(epoch["processed"])
        self.batches_that_stepped = int(state["epoch_loop.state_dict"]["_batches_that_stepped"])
        self.global_step = int(
            state["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"]["total"][
                "completed"
            ]
        )
        self.total_batch_idx = int(batch["total"]["completed"]) - 1
        self.epoch_started = int(epoch["started"])
        mid_epoch = self.epoch_started > self.epoch_processed and int(batch["current"]["completed"]) > 0
        self._restart = {
            "batches_done": int(batch["current"]["completed"]) if mid_epoch else 0,
            "epoch_finished": bool(
                mid_epoch and ours.get("epoch_finished", batch.get("is_last_batch", False))
            ),
            "epoch_start_rng": ours.get("epoch_start_rng"),
            "rng": rng,
            "val_pending": bool(mid_epoch and ours.get("val_pending", False)),
            "val_start_rng": ours.get("val_start_rng") if mid_epoch else None,
        }
        if mid_epoch:
            self.batches_done = self._restart["batches_done"]
            self.is_last_batch = self._restart["epoch_finished"]
