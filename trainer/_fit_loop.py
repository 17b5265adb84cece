"""The training loop, top to bottom: epochs, batches, the optimizer step, validation checks.

PL 2.x's order of hooks and counters, without its loop objects: ``run`` -> ``_epoch`` ->
``_batch`` -> ``_automatic_step``/``_manual_step``. Hooks that nothing overrides are skipped (the
``HookTable`` says which); the 32-bit CPU path adds no per-step context managers or copies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import Tensor

from . import _data
from ._data import iterate
from ._errors import MisconfigurationException
from ._fit_loop_state import FitLoopState
from ._logging import ResultCollection
from ._optim import step_schedulers
from ._progress import BatchProgress, Progress, counts
from ._rank_zero import rank_zero_info
from ._rng import capture_rng, restore_rng

if TYPE_CHECKING:
    from ._eval_loop import EvaluationLoop
    from ._trainer import Trainer


class FitLoop(FitLoopState):
    def __init__(self, trainer: Trainer, min_epochs: int | None, max_epochs: int | None) -> None:
        self.trainer = trainer
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.max_steps = trainer._max_steps
        self.min_steps = trainer._min_steps
        self.results = ResultCollection(training=True)
        self.val_loop: EvaluationLoop | None = None  # set by the Trainer
        self.epoch_started = 0  # PL's epoch_progress.current.ready/started
        self.epoch_processed = 0  # ... .processed
        self.epoch_completed = 0  # ... .completed == trainer.current_epoch
        self.global_step = 0
        self.batches_that_stepped = 0
        self.batch_idx = -1  # of the current epoch
        self.batches_done = 0  # batches of the current epoch whose step ran
        self.total_batch_idx = -1
        self.is_last_batch = False
        self._batch_tail = False  # between a batch's step and its on_advance_end (PL's name)
        self._epoch_outputs: list[Any] = []
        self._restart: dict[str, Any] | None = None
        self._epoch_start_rng: dict[str, Any] | None = None
        self._val_start_rng: dict[str, Any] | None = None
        self.train_dataloader: Any = None
        self.num_training_batches: int | float = float("inf")
        self._loaded_epoch = -1
        self._val_this_epoch = False
        self._h_batch_start = self._h_batch_end = True
        self._direct_zero_grad = self._direct_backward = self._direct_step = False
        self._needs_after_closure = self._transfer = True

    # -- PL names other code reads ---------------------------------------------------------------
    @property
    def epoch_loop(self) -> FitLoop:
        return self

    @property
    def _batches_that_stepped(self) -> int:
        return self.batches_that_stepped

    def log_step(self) -> int:
        return self.batches_that_stepped + 1

    @property
    def batch_progress(self) -> BatchProgress:
        """PL's batch counters, built from this loop's (a snapshot: changing it changes nothing)."""
        tail = 1 if self._batch_tail else 0
        in_batch = self.batch_idx + 1
        progress = BatchProgress(
            total=counts(
                self.total_batch_idx + 1, self.total_batch_idx + 1 - (in_batch - self.batches_done), 0
            ),
            current=counts(in_batch, self.batches_done, self.batches_done - tail),
            is_last_batch=self.is_last_batch,
        )
        progress.total.completed = progress.total.processed - tail
        return progress

    @property
    def epoch_progress(self) -> Progress:
        """PL's epoch counters: ``current.processed`` epochs ran their batches, ``completed`` ended."""
        total = counts(self.epoch_started, self.epoch_processed, self.epoch_completed)
        current = counts(self.epoch_started, self.epoch_processed, self.epoch_completed)
        return Progress(total=total, current=current)

    # -- data ------------------------------------------------------------------------------------
    def setup_data(self, force: bool = False) -> None:
        trainer = self.trainer
        every = trainer.reload_dataloaders_every_n_epochs
        stale = every > 0 and self._loaded_epoch >= 0 and self.epoch_completed - self._loaded_epoch >= every
        if self.train_dataloader is not None and not stale and not force:
            return
        loader = trainer._data.request("train")
        self.train_dataloader = loader
        self._loaded_epoch = self.epoch_completed
        self.num_training_batches = _data.num_batches(loader, trainer.limit_train_batches, "train")
        interval = trainer.val_check_interval
        if trainer._val_check_time_interval is not None:
            # time-based: no batch schedule; the clock starts now, and after each validation
            trainer.val_check_batch = None
            trainer._last_val_time = time.monotonic()
        elif isinstance(interval, int):
            trainer.val_check_batch = interval
            if (
                interval > self.num_training_batches
                and trainer.check_val_every_n_epoch is not None
                and trainer.limit_val_batches > 0  # nothing to validate: no schedule to check (PL 2.6.2)
            ):
                raise ValueError(
                    f" `val_check_interval` ({interval}) must be less than or equal to the number of the training "
                    f"batches ({self.num_training_batches}). If you want to disable validation set "
                    "`limit_val_batches` to 0.0 instead. If you want to validate based on the total training "
                    "batches, set `check_val_every_n_epoch=None`."
                )
        elif self.num_training_batches == float("inf"):
            if interval != 1.0:
                raise MisconfigurationException(
                    "When using an IterableDataset for `train_dataloader`, `Trainer(val_check_interval)` must be "
                    "`1.0` or an int. An int k specifies checking validation every k training batches."
                )
            trainer.val_check_batch = float("inf")
        else:
            trainer.val_check_batch = max(1, int(self.num_training_batches * interval))

    # -- counters --------------------------------------------------------------------------------
    def should_accumulate(self) -> bool:
        k = self.trainer.accumulate_grad_batches
        return k > 1 and (self.batch_idx + 1) % k != 0 and not self.is_last_batch

    _should_accumulate = should_accumulate  # PL's name (its callbacks and tests call it)

    def _get_monitor_value(self, key: str) -> Any:
        """The value a scheduler's ``monitor`` names (PL's method of this name)."""
        return self.trainer.callback_metrics.get(key)

    def _can_stop_early(self) -> bool:
        met_epochs = self.epoch_processed >= self.min_epochs if self.min_epochs else True
        met_steps = self.global_step >= self.min_steps if self.min_steps else True
        return met_epochs and met_steps

    def _max_steps_reached(self) -> bool:
        return self.max_steps != -1 and self.global_step >= self.max_steps

    @property
    def done(self) -> bool:
        if self.max_epochs == 0 or self.num_training_batches == 0 or self._max_steps_reached():
            return True
        max_epochs = self.max_epochs
        if max_epochs is not None and max_epochs != -1 and self.epoch_processed >= max_epochs:
            self.epoch_completed = self.epoch_processed
            return True
        return self.trainer.should_stop and self._can_stop_early()

    def _epoch_done(self) -> bool:
        if self._max_steps_reached():
            return True
        trainer = self.trainer
        if trainer.should_stop:
            if self._can_stop_early():
                return True
            trainer._info_once(
                f"Trainer was signaled to stop but the required `min_epochs={self.min_epochs!r}` or "
                f"`min_steps={self.min_steps!r}` has not been met. Training will continue..."
            )
        return False

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        trainer = self.trainer
        self.setup_data()
        if self.done:
            return
        self.epoch_completed = self.epoch_processed
        trainer.training = True
        if (
            self.val_loop is not None
            and self.val_loop.should_run_in_epoch(self)
            and not self.val_loop.loaders
        ):
            self.val_loop.setup_data()
        self._prepare_fast_path()
        # emptied here and after each epoch's metrics went out (PL): what on_train_start and
        # on_train_epoch_start log counts in the first epoch
        self.results.reset()
        if trainer.barebones:
            from ._barebones import STARTED

            rank_zero_info(STARTED)  # no progress bar: say that it runs
        trainer._call("on_train_start")
        if trainer._max_time is not None:
            trainer._start_time = time.monotonic()
        while not self.done:
            self._epoch()
        trainer._call("on_train_end")

    def _epoch(self) -> None:
        trainer = self.trainer
        restart, self._restart = self._restart, None
        self.setup_data()
        loader = self.train_dataloader
        _data.set_sampler_epoch(loader, self.epoch_processed)
        skip = 0
        if restart is None or restart["batches_done"] == 0:
            if restart is not None:
                restore_rng(restart["rng"])
            self.batch_idx = -1
            self.batches_done = 0
            self.epoch_started = self.epoch_processed + 1
            if self.val_loop is not None:
                self.val_loop.batch_progress.total.reset()  # PL counts validation batches per epoch
            trainer._call("on_train_epoch_start")
            self._epoch_start_rng = capture_rng()
        elif restart["epoch_finished"]:
            self.batches_done = restart["batches_done"]
            self.batch_idx = self.batches_done - 1
            self._epoch_start_rng = restart["epoch_start_rng"]
            restore_rng(restart.get("val_start_rng") or restart["rng"])
        else:
            skip = self.batches_done = restart["batches_done"]
            self.batch_idx = skip - 1
            self._epoch_start_rng = restart["epoch_start_rng"]
            restore_rng(restart["epoch_start_rng"])
        trainer._logger_connector.first_loop_iter = None
        self._val_this_epoch = self.val_loop is not None and self.val_loop.should_run_in_epoch(self)
        pending = restart is not None and restart.get("val_pending", False)
        if restart is None or not restart["epoch_finished"]:
            batches = iterate(loader, self.num_training_batches, skip)
            if skip and restart is not None:
                batches = _restore_after_first(batches, restart.get("val_start_rng") or restart["rng"])
            for batch_idx, batch, is_last in batches:
                if pending:  # the validation the checkpointed batch was about to trigger
                    pending = False
                    self._run_validation(self.should_accumulate())
                    self._after_validation()
                self.batch_idx = batch_idx
                self.total_batch_idx += 1
                self.is_last_batch = is_last
                if not self._batch(batch, batch_idx):
                    break
                if self._epoch_done():
                    break
        elif pending:
            self._run_validation(False)
            self._after_validation()
        self._epoch_end()

    def _epoch_end(self) -> None:
        trainer = self.trainer
        trainer._logger_connector.epoch_end_reached()
        self.epoch_processed += 1
        if trainer._hooks.module_hook("training_epoch_end") is not None:
            outputs, self._epoch_outputs = self._epoch_outputs, []
            trainer._call_legacy_epoch_end("training_epoch_end", outputs)
        trainer._call_callbacks("on_train_epoch_end", monitoring=False)
        trainer._call_module_hook("on_train_epoch_end")
        trainer._call_callbacks("on_train_epoch_end", monitoring=True)
        trainer._logger_connector.on_epoch_end()
        if self.batches_done and (self.is_last_batch or self.batches_done >= self.num_training_batches):
            self.update_lr_schedulers("epoch", plateau=True)
        # loggers expect the epoch metrics at the step of the epoch's last batch
        self.batches_that_stepped -= 1
        trainer._logger_connector.update_train_epoch_metrics()
        self.batches_that_stepped += 1
        self.epoch_completed += 1
        trainer._check_time()

    def _prepare_fast_path(self) -> None:
        """Decide once per run which per-batch calls can be skipped or made directly."""
        trainer = self.trainer
        hooks = trainer._hooks
        plain = trainer._plain_precision
        self._h_batch_start = hooks.overridden("on_train_batch_start")
        self._h_batch_end = hooks.overridden("on_train_batch_end")
        self._direct_zero_grad = not hooks.overridden("on_before_zero_grad") and (
            hooks.module_hook("optimizer_zero_grad") is None
        )
        self._direct_backward = plain and not (
            hooks.overridden("on_before_backward")
            or hooks.overridden("on_after_backward")
            or hooks.module_hook("backward") is not None
        )
        self._direct_step = plain and hooks.module_hook("optimizer_step") is None
        self._needs_after_closure = bool(
            hooks.overridden("on_before_optimizer_step")
            or hooks.module_hook("configure_gradient_clipping") is not None
            or trainer.gradient_clip_val
        )
        self._transfer = not trainer._skip_transfer or trainer._convert_input

    def _batch(self, batch: Any, batch_idx: int) -> bool:
        """One training batch and what follows it; False to end the epoch early."""
        trainer = self.trainer
        if self._transfer:
            batch = trainer._transfer_batch(batch, 0)
        connector = trainer._logger_connector
        connector.on_batch_start(batch, None, self.results)
        if self._h_batch_start and trainer._call("on_train_batch_start", batch, batch_idx) == -1:
            return False
        if trainer._automatic_optimization:
            output = self._automatic_step(batch, batch_idx)
        else:
            output = self._manual_step(batch, batch_idx)
        self.batches_done += 1
        self._batch_tail = True
        if trainer.lr_scheduler_configs:
            self.update_lr_schedulers("step", plateau=False)
            if self.is_last_batch or self.batches_done >= self.num_training_batches:
                self.update_lr_schedulers("epoch", plateau=False)
        if self._h_batch_end:
            trainer._call("on_train_batch_end", output, batch, batch_idx)
        connector.on_batch_end(self.results)
        accumulating = self.should_accumulate()
        if trainer.loggers and not (accumulating and trainer._automatic_optimization):
            every = trainer.log_every_n_steps
            if (
                (every and (self.batches_that_stepped + 1) % every == 0)
                or trainer.should_stop
                or trainer.fast_dev_run
            ):
                connector.log_metrics(self.results.metrics(trainer, on_step=True)[1])
        if self._val_this_epoch and self._should_check_val():
            self._run_validation(accumulating)
        self._after_validation()
        if not accumulating:
            self.batches_that_stepped += 1
        self._batch_tail = False
        if trainer.should_stop:
            for logger in trainer.loggers:
                logger.save()
        if trainer._max_time is not None:
            trainer._check_time()
        return True

    def _run_validation(self, accumulating: bool) -> None:
        trainer = self.trainer
        connector = trainer._logger_connector
        assert self.val_loop is not None
        trainer.validating = True
        first = connector.first_loop_iter
        if not accumulating:
            trainer._call_module_hook("on_validation_model_zero_grad")
        # A checkpoint saved during this validation resumes it from here: making its dataloader's
        # iterator draws from the global RNG, which the resumed run's new iterator draws again.
        self._val_start_rng = capture_rng()
        try:
            self.val_loop.run()
        finally:
            self._val_start_rng = None
        trainer.training = True
        connector.first_loop_iter = first

    def _after_validation(self) -> None:
        if self.trainer.lr_scheduler_configs:
            self.update_lr_schedulers("step", plateau=True)

    def _val_pending(self) -> bool:
        if not self._batch_tail or self.val_loop is None:
            return False
        trainer = self.trainer
        if trainer.validating:
            # saved while this batch's validation runs its batches (a stop, an exception): the resumed run
            # runs all of that validation again, since its batches so far are part of no saved state
            return self.val_loop._in_batches and not trainer.sanity_checking
        if trainer._val_check_time_interval is not None:
            return False  # a clock's decision: a resumed run's clock starts afresh anyway
        return bool(self._val_this_epoch and self._should_check_val())

    def _should_check_val(self) -> bool:
        trainer = self.trainer
        infinite = trainer.val_check_batch == float("inf")
        if self.is_last_batch and infinite:
            return True
        if trainer.should_stop and self._can_stop_early():
            return True
        every_s = trainer._val_check_time_interval
        if every_s is not None:
            return time.monotonic() - trainer._last_val_time >= every_s
        if isinstance(trainer.limit_train_batches, int) and infinite:
            return (self.batch_idx + 1) % trainer.limit_train_batches == 0
        every = trainer.val_check_batch
        if not infinite and every is not None:
            current = self.total_batch_idx if trainer.check_val_every_n_epoch is None else self.batch_idx
            return (current + 1) % int(every) == 0
        return self.is_last_batch

    # -- optimization ----------------------------------------------------------------------------
    def _automatic_step(self, batch: Any, batch_idx: int) -> Any:
        trainer = self.trainer
        optimizer = trainer.optimizers[0]
        k = trainer.accumulate_grad_batches
        zero_grad = batch_idx % k == 0
        direct_zero_grad = self._direct_zero_grad
        direct_backward = self._direct_backward
        output: Any = {}

        def closure() -> Tensor | None:
            nonlocal output
            loss, output = trainer._training_step(batch, batch_idx, k)
            if zero_grad:
                if direct_zero_grad:
                    optimizer.zero_grad()
                else:
                    trainer._zero_grad(optimizer, batch_idx)
            if loss is not None:
                if direct_backward:
                    loss.backward()
                else:
                    trainer._backward(loss, optimizer)
            return loss

        if self.should_accumulate():
            with trainer.strategy.block_backward_sync():
                closure()
        elif self._direct_step and not self._needs_after_closure:
            optimizer.step(closure=closure)
            self.global_step += 1
        else:
            trainer._step_optimizer(optimizer, batch_idx, closure)
            self.global_step += 1
        if trainer._collect_epoch_outputs and output:
            self._epoch_outputs.append(output)
        return output

    def _manual_step(self, batch: Any, batch_idx: int) -> Any:
        trainer = self.trainer
        output = trainer._training_step_manual(batch, batch_idx)
        if trainer._collect_epoch_outputs and output:
            self._epoch_outputs.append(output)
        return output

    def on_manual_optimizer_step(self) -> None:
        self.global_step += 1

    def update_lr_schedulers(self, interval: str, plateau: bool) -> None:
        if interval == "step" and self.should_accumulate():
            return
        step_schedulers(self.trainer, interval, plateau, self.batches_that_stepped)


def _restore_after_first(
    batches: Iterator[tuple[int, Any, bool]], rng: dict[str, Any] | None
) -> Iterator[tuple[int, Any, bool]]:
    """Fast-forwarded iterators drew their shuffle from the epoch-start generators; the step that
    follows must draw from the generators as they were when the checkpoint was written."""
    first = True
    for item in batches:
        if first and rng is not None:
            restore_rng(rng)
        first = False
        yield item
