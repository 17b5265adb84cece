"""``TQDMProgressBar``: PL 2.x's default progress bar, drawn with tqdm (imported when a bar is made)."""

import math
import sys
from typing import Any

from ._progress import ProgressBar

Trainer = Any
LightningModule = Any

_PAD_SIZE = 5


def _make_tqdm(**kwargs: Any) -> Any:
    from tqdm import tqdm

    class Tqdm(tqdm):
        @staticmethod
        def format_num(n: int | float | str) -> str:
            """Pad floats to a fixed width so the postfix does not jitter (``0.1`` -> ``0.100``)."""
            padded = isinstance(n, float | str)
            text = n if isinstance(n, str) else str(tqdm.format_num(n))
            if padded and "e" not in text:
                if "." not in text and len(text) < _PAD_SIZE:
                    try:
                        float(text)
                    except ValueError:
                        return text
                    text += "."
                text += "0" * (_PAD_SIZE - len(text))
            return text

    return Tqdm(**kwargs)


def _total(value: int | float) -> int | None:
    """tqdm wants ``None`` for an unknown (infinite) total."""
    return None if isinstance(value, float) and math.isinf(value) else int(value)


def _update_n(bar: Any, value: int) -> None:
    if not bar.disable:
        bar.n = value
        bar.refresh()


class TQDMProgressBar(ProgressBar):
    """A tqdm bar for training (``Epoch N``) and one for each validation, test and predict loop.

    Args:
        refresh_rate: redraw every this many batches; 0 disables the bar.
        process_position: the line offset, for several Trainers at once.
        leave: keep each epoch's bar on screen.
        min_refresh_interval: at most one redraw per this many seconds (the last batch always draws).
    """

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def __init__(
        self,
        refresh_rate: int = 1,
        process_position: int = 0,
        leave: bool = False,
        min_refresh_interval: float = 0.1,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, min_refresh_interval=min_refresh_interval)
        self._process_position = process_position
        self._leave = leave
        self._train_progress_bar: Any = None
        self._train_n = 0
        self._val_progress_bar: Any = None
        self._test_progress_bar: Any = None
        self._predict_progress_bar: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # bars hold streams and locks: a pickled callback (ddp_spawn) makes new ones
        state = self.__dict__.copy()
        for key in (
            "_train_progress_bar",
            "_val_progress_bar",
            "_test_progress_bar",
            "_predict_progress_bar",
        ):
            state[key] = None
        return state

    @property
    def process_position(self) -> int:
        return self._process_position

    @property
    def train_progress_bar(self) -> Any:
        if self._train_progress_bar is None:
            raise TypeError(
                f"The `{type(self).__name__}._train_progress_bar` reference has not been set yet."
            )
        return self._train_progress_bar

    @property
    def val_progress_bar(self) -> Any:
        if self._val_progress_bar is None:
            raise TypeError(f"The `{type(self).__name__}._val_progress_bar` reference has not been set yet.")
        return self._val_progress_bar

    @property
    def test_progress_bar(self) -> Any:
        if self._test_progress_bar is None:
            raise TypeError(f"The `{type(self).__name__}._test_progress_bar` reference has not been set yet.")
        return self._test_progress_bar

    @property
    def predict_progress_bar(self) -> Any:
        if self._predict_progress_bar is None:
            raise TypeError(
                f"The `{type(self).__name__}._predict_progress_bar` reference has not been set yet."
            )
        return self._predict_progress_bar

    def _bar(self, desc: str, position: int, leave: bool, **extra: Any) -> Any:
        return _make_tqdm(
            desc=desc,
            position=position,
            disable=self.is_disabled,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stdout,
            bar_format=self.BAR_FORMAT,
            **extra,
        )

    def init_sanity_tqdm(self) -> Any:
        return self._bar(self.sanity_check_description, 2 * self._process_position, leave=False)

    def init_train_tqdm(self) -> Any:
        return self._bar(self.train_description, 2 * self._process_position, leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Any:
        return self._bar(self.predict_description, 2 * self._process_position, leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Any:
        # trainer.validate() has no training bar above this one
        has_main_bar = self.trainer.state.fn != "validate"
        return self._bar(
            self.validation_description, 2 * self._process_position + has_main_bar, leave=not has_main_bar
        )

    def init_test_tqdm(self) -> Any:
        return self._bar(self.test_description, 2 * self._process_position, leave=True)

    # -- sanity check and training ------------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_progress_bar = self.init_sanity_tqdm()
        self._train_progress_bar = _make_tqdm(disable=True)

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_progress_bar.close()
        self.val_progress_bar.close()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._train_progress_bar = self.init_train_tqdm()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._leave:
            self._train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(_total(self.total_train_batches))
        self.train_progress_bar.initial = 0
        self._train_n = 0
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self._train_n = batch_idx + 1
        if self._should_update(n, self.train_progress_bar.total):
            _update_n(self.train_progress_bar, n)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            # throttled redraws may have skipped the epoch's last batches: show where it ended
            bar.n = self._train_n
            bar.set_postfix(self.get_metrics(trainer, pl_module))
        if self._leave:
            bar.close()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._leave and self._train_progress_bar is not None:
            self._train_progress_bar.close()

    # -- validation ---------------------------------------------------------------------------------------
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_progress_bar = self.init_validation_tqdm()

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        self.val_progress_bar.reset(_total(self.total_val_batches_current_dataloader))
        self.val_progress_bar.initial = 0
        desc = self.sanity_check_description if trainer.sanity_checking else self.validation_description
        self.val_progress_bar.set_description(f"{desc} DataLoader {dataloader_idx}")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        if self._should_update(n, self.val_progress_bar.total):
            _update_n(self.val_progress_bar, n)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._train_progress_bar is not None and trainer.state.fn == "fit":
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
        if self._val_progress_bar is not None:
            self._val_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    # -- test and predict ---------------------------------------------------------------------------------
    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._test_progress_bar = self.init_test_tqdm()

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        self.test_progress_bar.reset(_total(self.total_test_batches_current_dataloader))
        self.test_progress_bar.initial = 0
        self.test_progress_bar.set_description(f"{self.test_description} DataLoader {dataloader_idx}")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        if self._should_update(n, self.test_progress_bar.total):
            _update_n(self.test_progress_bar, n)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.test_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._predict_progress_bar = self.init_predict_tqdm()

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        self.predict_progress_bar.reset(_total(self.total_predict_batches_current_dataloader))
        self.predict_progress_bar.initial = 0
        self.predict_progress_bar.set_description(f"{self.predict_description} DataLoader {dataloader_idx}")

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        if self._should_update(n, self.predict_progress_bar.total):
            _update_n(self.predict_progress_bar, n)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.predict_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        active = None
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar):
            if bar is not None and not bar.disable:
                active = bar
                break
        if (
            active is None
            and self._predict_progress_bar is not None
            and not self._predict_progress_bar.disable
        ):
            active = self._predict_progress_bar
        if active is None:
            print(*args, sep=sep, **kwargs)
            return
        active.write(sep.join(map(str, args)), **kwargs)
