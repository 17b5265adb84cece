"""The three metric dicts of the Trainer and the hand-off of logged values to the loggers.

Mirrors PL 2.x's logger connector, with one difference that keeps the step loop lean: after a batch
the dicts are only marked stale (``_dirty``) and are rebuilt when read or when the phase moves on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from ._logging import ResultCollection, to_scalars

if TYPE_CHECKING:
    from ._trainer import Trainer


class LoggerConnector:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._callback_metrics: dict[str, Tensor] = {}
        self._logged_metrics: dict[str, Tensor] = {}
        self._progress_bar_metrics: dict[str, Any] = {}
        # None: no batch yet in this phase; True: first batch; False: later batches (PL's meaning)
        self.first_loop_iter: bool | None = None
        self._dirty: ResultCollection | None = None  # results whose step values are not copied yet

    # -- phases ------------------------------------------------------------------------------
    def on_batch_start(
        self, batch: Any, dataloader_idx: int | None = None, results: ResultCollection | None = None
    ) -> None:
        if self.first_loop_iter is None:
            self.first_loop_iter = True
        elif self.first_loop_iter:
            self.first_loop_iter = False
        if results is None:
            results = self.trainer._results
        if results is not None:
            results.batch = batch
            results.batch_size = None
            results.dataloader_idx = dataloader_idx

    def on_batch_end(self, results: ResultCollection | None = None) -> None:
        if results is None:
            results = self.trainer._results
        if self._dirty is not None and self._dirty is not results:
            self._flush()  # another loop's batch ran since (validation inside an epoch)
        self._dirty = results
        if results is not None:
            results.batch = None

    def epoch_end_reached(self) -> None:
        self._flush()
        self.first_loop_iter = None

    def on_epoch_end(self) -> None:
        self._flush()
        results = self.trainer._results
        if results is None:
            return
        callback, log, pbar = results.metrics(self.trainer, on_step=False)
        self._update(callback, log, pbar)

    def reset_results(self) -> None:
        self._flush()
        results = self.trainer._results
        if results is not None:
            results.reset()
        self.first_loop_iter = None

    def reset_metrics(self) -> None:
        self._dirty = None
        self._callback_metrics = {}
        self._logged_metrics = {}
        self._progress_bar_metrics = {}

    # -- loggers -----------------------------------------------------------------------------
    @property
    def should_update_logs(self) -> bool:
        trainer = self.trainer
        every = trainer.log_every_n_steps
        if every == 0:
            return False
        loop = trainer._active_loop
        step = loop.log_step() if loop is not None else 0
        return step % every == 0 or trainer.should_stop

    def log_metrics(self, metrics: dict[str, Tensor], step: int | None = None) -> None:
        trainer = self.trainer
        if not trainer.loggers or not metrics:
            return
        self._logged_metrics.update(metrics)
        scalars = to_scalars(metrics)
        if step is None:
            step_metric = scalars.pop("step", None)
            if step_metric is not None:
                step = int(step_metric)
            else:
                scalars.setdefault("epoch", trainer.current_epoch)
                step = trainer.fit_loop.batches_that_stepped
        for logger in trainer.loggers:
            logger.log_metrics(metrics=scalars, step=step)  # by keyword, as PL calls it
            logger.save()

    def update_train_epoch_metrics(self) -> None:
        results = self.trainer._results
        if results is not None:
            self.log_metrics(results.metrics(self.trainer, on_step=False)[1])
        self.reset_results()

    def update_eval_step_metrics(self, step: int) -> None:
        results = self.trainer._results
        if results is not None and self.trainer.loggers:
            # this dataloader's values only: another loader's last step value is not of this step
            metrics = results.metrics(self.trainer, on_step=True, dataloader_idx=results.dataloader_idx)
            self.log_metrics(metrics[1], step=step)

    def update_eval_epoch_metrics(self, dataloader_idx: int | None) -> dict[str, Tensor]:
        """The epoch values of one eval dataloader (and of the epoch-end hooks), for ``validate()``'s result."""
        if self.trainer.sanity_checking:
            return {}
        results = self.trainer._results
        if results is None:
            return {}
        callback, log, pbar = results.metrics(self.trainer, on_step=False, dataloader_idx=dataloader_idx)
        self._update(callback, log, pbar)
        return log

    def log_eval_end_metrics(self, metrics: dict[str, Tensor]) -> None:
        if not self.trainer.sanity_checking:
            self.log_metrics(metrics)

    # -- the dicts ---------------------------------------------------------------------------
    def _update(self, callback: dict[str, Tensor], log: dict[str, Tensor], pbar: dict[str, Tensor]) -> None:
        self._callback_metrics.update(callback)
        self._logged_metrics.update(log)
        self._progress_bar_metrics.update(to_scalars(pbar))

    def _flush(self) -> None:
        """Apply the step values PL would have copied after the last batch."""
        results, self._dirty = self._dirty, None
        if results is not None:
            self._update(*results.metrics(self.trainer, on_step=True))

    def _current(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]] | None:
        self._flush()
        results = self.trainer._results
        if results is None:
            return None
        return results.metrics(self.trainer, on_step=self.first_loop_iter is not None)

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        current = self._current()
        if current is not None:
            self._callback_metrics.update(current[0])
        return self._callback_metrics

    @property
    def logged_metrics(self) -> dict[str, Tensor]:
        current = self._current()
        if current is not None:
            self._logged_metrics.update(current[1])
        return self._logged_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, Any]:
        current = self._current()
        if current is not None:
            self._progress_bar_metrics.update(to_scalars(current[2]))
        return self._progress_bar_metrics

    def teardown(self) -> None:
        self._flush()
        self._callback_metrics = {k: v.cpu() for k, v in self._callback_metrics.items()}
        self._logged_metrics = {k: v.cpu() for k, v in self._logged_metrics.items()}
