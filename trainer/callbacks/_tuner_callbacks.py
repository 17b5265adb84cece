"""``LearningRateFinder`` and ``BatchSizeFinder``: the Tuner's two searches, run as callbacks.

Both search when their stage starts (``fit``: ``on_fit_start``; ``BatchSizeFinder`` also before
``validate``/``test``/``predict``), on trial Trainers as :class:`~..tuner.Tuner` does, so the run that
follows starts from the module's own weights with the value found. Subclass and call ``lr_find`` or
``scale_batch_size`` from another hook to search at another time (PL's pattern for a search every few
epochs).
"""

from typing import Any

from .._errors import MisconfigurationException
from ._base import Callback

Trainer = Any
LightningModule = Any


class LearningRateFinder(Callback):
    """Run the learning-rate range test when fit starts; the suggestion replaces the module's ``lr``
    and the learning rate of every optimizer group of this run (with ``update_attr``)."""

    SUPPORTED_MODES = ("linear", "exponential")

    def __init__(
        self,
        min_lr: float = 1e-8,
        max_lr: float = 1,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        update_attr: bool = True,
        attr_name: str = "",
    ) -> None:
        mode = mode.lower()
        if mode not in self.SUPPORTED_MODES:
            raise ValueError(f"`mode` should be either of {self.SUPPORTED_MODES}")
        self._min_lr = min_lr
        self._max_lr = max_lr
        self._num_training_steps = num_training_steps
        self._mode = mode
        self._early_stop_threshold = early_stop_threshold
        self._update_attr = update_attr
        self._attr_name = attr_name
        self._early_exit = False
        self.optimal_lr: Any = None

    def lr_find(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from ..tuner import Tuner

        explicit = trainer._data.explicit
        self.optimal_lr = Tuner(trainer).lr_find(
            pl_module,
            train_dataloaders=explicit.get("train"),
            val_dataloaders=explicit.get("val"),
            datamodule=trainer.datamodule,
            min_lr=self._min_lr,
            max_lr=self._max_lr,
            num_training=self._num_training_steps,
            mode=self._mode,
            early_stop_threshold=self._early_stop_threshold,
            update_attr=self._update_attr,
            attr_name=self._attr_name,
        )
        suggestion = self.optimal_lr.suggestion() if self.optimal_lr is not None else None
        if self._update_attr and suggestion is not None:
            # this run's optimizers exist already: they take the rate found too
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = suggestion
        if self._early_exit:
            trainer.should_stop = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.lr_find(trainer, pl_module)


class BatchSizeFinder(Callback):
    """Find the largest batch size that fits when the stage starts, and run the stage with it."""

    SUPPORTED_MODES = ("power", "binsearch")

    def __init__(
        self,
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        batch_arg_name: str = "batch_size",
        margin: float = 0.05,
        max_val: int = 8192,
    ) -> None:
        mode = mode.lower()
        if mode not in self.SUPPORTED_MODES:
            raise ValueError(f"`mode` should be either of {self.SUPPORTED_MODES}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"`margin` should be between 0 and 1. Found {margin=}")
        self.optimal_batch_size: int | None = init_val
        self._mode = mode
        self._steps_per_trial = steps_per_trial
        self._init_val = init_val
        self._max_trials = max_trials
        self._batch_arg_name = batch_arg_name
        self._margin = margin
        self._max_val = max_val
        self._early_exit = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer._data.explicit:
            raise MisconfigurationException(
                "The Batch size finder cannot be used with dataloaders passed directly to `.fit()`, `.validate()`, "
                "`.test()` or `.predict()`. Please define the corresponding dataloader hook in your "
                "LightningModule or LightningDataModule instead."
            )

    def scale_batch_size(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from ..tuner import Tuner

        method = trainer.state.fn.value if trainer.state.fn is not None else "fit"
        self.optimal_batch_size = Tuner(trainer).scale_batch_size(
            pl_module,
            datamodule=trainer.datamodule,
            method=method,
            mode=self._mode,
            steps_per_trial=self._steps_per_trial,
            init_val=self._init_val,
            max_trials=self._max_trials,
            batch_arg_name=self._batch_arg_name,
            margin=self._margin,
            max_val=self._max_val,
        )
        if method != "fit":
            loop = {
                "validate": trainer.validate_loop,
                "test": trainer.test_loop,
                "predict": trainer.predict_loop,
            }
            loop[method].loaders = []
            loop[method].setup_data()  # the loaders of this run, at the size found
        if self._early_exit:
            trainer.should_stop = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self.scale_batch_size(trainer, pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)
