"""``RichProgressBar``: progress drawn with rich (imported when the bar starts), as PL 2.x offers.

One rich ``Progress`` holds a task per loop (the training epoch, validation, test, predict); the
training task carries the metrics in a text column. Redraws are manual and throttled like every bar
here (see ``_progress.py``); on a console that is not a terminal rich prints the final state only.
"""

import math
from dataclasses import dataclass
from typing import Any

from ._progress import ProgressBar

Trainer = Any
LightningModule = Any


@dataclass
class RichProgressBarTheme:
    """Styles for the parts of the bar (any rich style string)."""

    description: str = ""
    progress_bar: str = "#6206E0"
    progress_bar_finished: str = "#6206E0"
    progress_bar_pulse: str = "#6206E0"
    batch_progress: str = ""
    time: str = "dim"
    processing_speed: str = "dim underline"
    metrics: str = "italic"
    metrics_text_delimiter: str = " "
    metrics_format: str = ".3f"


def _format_metrics(metrics: dict[str, Any], theme: RichProgressBarTheme) -> str:
    parts = []
    for name, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{name}: {value:{theme.metrics_format}}")
        else:
            parts.append(f"{name}: {value}")
    return theme.metrics_text_delimiter.join(parts)


class RichProgressBar(ProgressBar):
    """Progress bars drawn with rich.

    Args:
        refresh_rate: redraw every this many batches; 0 disables the bar.
        leave: keep each epoch's training task on screen.
        theme: styles of the parts.
        console_kwargs: passed to ``rich.console.Console`` (``file``, ``force_terminal``, ``width``...).
        min_refresh_interval: at most one redraw per this many seconds (the last batch always draws).
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        theme: RichProgressBarTheme | None = None,
        console_kwargs: dict[str, Any] | None = None,
        min_refresh_interval: float = 0.1,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, min_refresh_interval=min_refresh_interval)
        self._leave = leave
        self.theme = theme or RichProgressBarTheme()
        self._console_kwargs = dict(console_kwargs or {})
        self.progress: Any = None
        self.train_progress_bar_id: Any = None
        self.val_progress_bar_id: Any = None
        self.test_progress_bar_id: Any = None
        self.predict_progress_bar_id: Any = None
        self._metrics_shown: dict[str, Any] = {}
        self._train_n = 0

    def __getstate__(self) -> dict[str, Any]:
        # a live rich display holds a console and a thread: a pickled callback starts a new one
        state = self.__dict__.copy()
        state["progress"] = None
        return state

    # -- the rich display ---------------------------------------------------------------------------------
    def _init_progress(self) -> None:
        if self.progress is not None or self.is_disabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        theme = self.theme
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}", style=theme.description),
            BarColumn(
                complete_style=theme.progress_bar,
                finished_style=theme.progress_bar_finished,
                pulse_style=theme.progress_bar_pulse,
            ),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("•", style=theme.time),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}", style=theme.metrics),
            console=Console(**self._console_kwargs),
            auto_refresh=False,
            transient=False,
        )
        self.progress.start()

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None
            self.train_progress_bar_id = None

    def _add_task(self, total: int | float, description: str, visible: bool = True) -> Any:
        assert self.progress is not None
        known = None if isinstance(total, float) and math.isinf(total) else total
        return self.progress.add_task(description, total=known, visible=visible, metrics="")

    def _update(self, task_id: Any, current: int, visible: bool = True) -> None:
        if self.progress is None or task_id is None:
            return
        total = self.progress.tasks[task_id].total
        if self._should_update(current, total if total is not None else math.inf):
            self.progress.update(task_id, completed=current, visible=visible)
            if task_id == self.train_progress_bar_id:
                self._update_metrics(self.trainer)
            self.progress.refresh()

    def _update_metrics(self, trainer: Trainer) -> None:
        if self.progress is None or self.train_progress_bar_id is None:
            return
        self._metrics_shown = self.get_metrics(trainer, trainer.lightning_module)
        text = _format_metrics(self._metrics_shown, self.theme)
        self.progress.update(self.train_progress_bar_id, metrics=text)

    # -- hooks --------------------------------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress()

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is not None and self.val_progress_bar_id is not None:
            self.progress.update(self.val_progress_bar_id, visible=False)
            self.progress.refresh()
        self.val_progress_bar_id = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is None:
            return
        description = f"Epoch {trainer.current_epoch}"
        if self.train_progress_bar_id is not None and not self._leave:
            self.progress.reset(self.train_progress_bar_id, total=self._known(self.total_train_batches))
            self.progress.update(self.train_progress_bar_id, description=description, completed=0)
        else:
            if self.train_progress_bar_id is not None:
                # the finished epoch stays on screen above the new one
                self.progress.stop_task(self.train_progress_bar_id)
            self.train_progress_bar_id = self._add_task(self.total_train_batches, description)
        self.progress.refresh()

    @staticmethod
    def _known(total: int | float) -> int | float | None:
        return None if isinstance(total, float) and math.isinf(total) else total

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._train_n = batch_idx + 1
        self._update(self.train_progress_bar_id, batch_idx + 1)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is None or self.train_progress_bar_id is None:
            return
        self.progress.update(self.train_progress_bar_id, completed=self._train_n)
        self._update_metrics(trainer)
        self.progress.refresh()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_progress()

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._init_progress()
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        if self.val_progress_bar_id is not None:
            self.progress.update(self.val_progress_bar_id, visible=False)
        desc = self.sanity_check_description if trainer.sanity_checking else self.validation_description
        self.val_progress_bar_id = self._add_task(self.total_val_batches_current_dataloader, desc)
        self.progress.refresh()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(self.val_progress_bar_id, batch_idx + 1)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is not None and self.val_progress_bar_id is not None:
            # validation during fit is transient: the epoch's bar is what stays
            self.progress.update(self.val_progress_bar_id, visible=trainer.state.fn != "fit")
            if trainer.state.fn == "fit":
                self._update_metrics(trainer)
            self.progress.refresh()
        self.val_progress_bar_id = None
        self.reset_dataloader_idx_tracker()
        if trainer.state.fn == "validate":
            self._stop_progress()

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._init_progress()
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self.test_progress_bar_id = self._add_task(
            self.total_test_batches_current_dataloader, self.test_description
        )

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(self.test_progress_bar_id, batch_idx + 1)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_progress()
        self.test_progress_bar_id = None
        self.reset_dataloader_idx_tracker()

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._init_progress()
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self.predict_progress_bar_id = self._add_task(
            self.total_predict_batches_current_dataloader, self.predict_description
        )

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(self.predict_progress_bar_id, batch_idx + 1)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_progress()
        self.predict_progress_bar_id = None
        self.reset_dataloader_idx_tracker()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._stop_progress()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._stop_progress()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.console.print(*args, sep=sep, **kwargs)
        else:
            print(*args, sep=sep, **kwargs)
