"""``ProgressBar``: the base of progress bars, and what decides when a bar may redraw.

Reading ``trainer.progress_bar_metrics`` turns logged tensors into Python numbers (a device sync per
value), and a redraw writes to the terminal: each costs far more than a small training step. So a
bar redraws only every ``refresh_rate`` batches *and* at most once per ``min_refresh_interval``
seconds (plus the last batch of each loop), and the metrics are read only when it redraws. Left on,
a bar then costs a modulo and a clock read per batch.
"""

import time
from typing import Any

from ._base import Callback

Trainer = Any
LightningModule = Any


def get_standard_metrics(trainer: Trainer) -> dict[str, int | str | float | dict[str, float]]:
    """What every bar shows besides the logged metrics: ``v_num``, the logger's version."""
    items: dict[str, int | str | float | dict[str, float]] = {}
    loggers = list(getattr(trainer, "loggers", None) or [])
    if not loggers:
        return items
    versions = [logger.version for logger in loggers]
    unique = list(dict.fromkeys(str(v) for v in versions if v not in ("", None)))
    if not unique:
        return items
    version: int | str = versions[0] if len(unique) == 1 and len(loggers) == 1 else "_".join(unique)
    if isinstance(version, str):
        version = version[-4:]
    items["v_num"] = version
    return items


class ProgressBar(Callback):
    """Base class for progress bars: the totals, descriptions and metrics a bar shows.

    Subclasses implement the hooks that draw, call :meth:`_should_update` before each redraw, and
    :meth:`get_metrics` only when it returns True.
    """

    def __init__(self, refresh_rate: int = 1, min_refresh_interval: float = 0.1) -> None:
        self._trainer: Trainer | None = None
        self._current_eval_dataloader_idx: int | None = None
        self._enabled = True
        self._refresh_rate = refresh_rate
        self._min_refresh_interval = min_refresh_interval
        self._last_refresh = 0.0

    @property
    def trainer(self) -> Trainer:
        if self._trainer is None:
            raise TypeError(f"The `{type(self).__name__}._trainer` reference has not been set yet.")
        return self._trainer

    @property
    def refresh_rate(self) -> int:
        return self._refresh_rate

    @property
    def sanity_check_description(self) -> str:
        return "Sanity Checking"

    @property
    def train_description(self) -> str:
        return "Training"

    @property
    def validation_description(self) -> str:
        return "Validation"

    @property
    def test_description(self) -> str:
        return "Testing"

    @property
    def predict_description(self) -> str:
        return "Predicting"

    @property
    def total_train_batches(self) -> int | float:
        """Batches in one training epoch (``inf`` for an iterable without length)."""
        return self.trainer.num_training_batches

    @staticmethod
    def _at(batches: Any, index: int | None) -> int | float:
        if isinstance(batches, list | tuple):
            return batches[index or 0] if batches else 0
        return batches

    @property
    def total_val_batches_current_dataloader(self) -> int | float:
        batches = (
            self.trainer.num_sanity_val_batches
            if self.trainer.sanity_checking
            else self.trainer.num_val_batches
        )
        return self._at(batches, self._current_eval_dataloader_idx)

    @property
    def total_test_batches_current_dataloader(self) -> int | float:
        return self._at(self.trainer.num_test_batches, self._current_eval_dataloader_idx)

    @property
    def total_predict_batches_current_dataloader(self) -> int | float:
        return self._at(self.trainer.num_predict_batches, self._current_eval_dataloader_idx)

    @property
    def total_val_batches(self) -> int | float:
        """Validation batches this epoch: 0 in epochs that skip validation."""
        trainer = self.trainer
        every = trainer.check_val_every_n_epoch
        if every is not None and (trainer.current_epoch + 1) % every != 0:
            return 0
        batches = trainer.num_val_batches
        return sum(batches) if isinstance(batches, list | tuple) else batches

    def has_dataloader_changed(self, dataloader_idx: int) -> bool:
        old, self._current_eval_dataloader_idx = self._current_eval_dataloader_idx, dataloader_idx
        return old != dataloader_idx

    def reset_dataloader_idx_tracker(self) -> None:
        self._current_eval_dataloader_idx = None

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._refresh_rate > 0

    @property
    def is_disabled(self) -> bool:
        return not self.is_enabled

    def disable(self) -> None:
        """Stop drawing (the Trainer and the tuner use this on non-zero ranks and during trials)."""
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print without breaking the bars."""
        print(*args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer
        if not trainer.is_global_zero:
            self.disable()

    def _should_update(self, current: int, total: int | float) -> bool:
        """Whether batch ``current`` of ``total`` may redraw: every ``refresh_rate`` batches, at most
        once per ``min_refresh_interval`` seconds, and always on the last batch."""
        if not self.is_enabled:
            return False
        last = current == total
        if not last and current % self._refresh_rate != 0:
            return False
        now = time.perf_counter()  # not monotonic(): code that fakes that clock counts its calls
        if not last and now - self._last_refresh < self._min_refresh_interval:
            return False
        self._last_refresh = now
        return True

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """What the bar shows: ``v_num`` and the metrics logged with ``prog_bar=True``."""
        standard = get_standard_metrics(trainer)
        shown = dict(trainer.progress_bar_metrics)
        duplicates = sorted(standard.keys() & shown.keys())
        if duplicates:
            import warnings

            warnings.warn(
                f"The progress bar already tracks a metric with the name(s) '{', '.join(duplicates)}' and "
                f"`self.log('{duplicates[0]}', ..., prog_bar=True)` will overwrite this value.",
                stacklevel=2,
            )
        for key, value in shown.items():
            if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
                shown[key] = value.item()
        return {**standard, **shown}
