"""The Trainer's properties, with PL 2.x's names and meanings (a mixin of ``Trainer``)."""

import math
import os
from typing import TYPE_CHECKING, Any

import torch

from . import _fs
from ._callback_setup import is_checkpoint, is_early_stopping, is_progress_bar
from ._state import TrainerFn

if TYPE_CHECKING:
    from ._data_connector import DataConnector
    from ._datamodule import LightningDataModule
    from ._eval_loop import EvaluationLoop, PredictionLoop
    from ._fit_loop import FitLoop
    from ._hooks import HookTable
    from ._logger_connector import LoggerConnector
    from ._state import TrainerState
    from ._strategy import Strategy


class TrainerProperties:
    if TYPE_CHECKING:
        state: TrainerState
        fit_loop: FitLoop
        validate_loop: EvaluationLoop
        test_loop: EvaluationLoop
        predict_loop: PredictionLoop
        strategy: Strategy
        _data: DataConnector
        _hooks: HookTable
        _logger_connector: LoggerConnector
        _module: Any
        _precision: str
        _ckpt_path: str | None
        _default_root_dir: str
        device_ids: list[int]
        num_sanity_val_steps: int | float
        limit_val_batches: int | float
        accumulate_grad_batches: int
        loggers: list[Any]
        callbacks: list[Any]

    # -- progress --------------------------------------------------------------------------------
    @property
    def current_epoch(self) -> int:
        return self.fit_loop.epoch_completed

    @property
    def global_step(self) -> int:
        return self.fit_loop.global_step

    @property
    def max_epochs(self) -> int | None:
        """None until ``fit`` sets the default (1000 without another limit, else -1), as in PL."""
        return self.fit_loop.max_epochs

    @property
    def min_epochs(self) -> int | None:
        return self.fit_loop.min_epochs

    @property
    def max_steps(self) -> int:
        return self.fit_loop.max_steps

    @property
    def min_steps(self) -> int | None:
        return self.fit_loop.min_steps

    @property
    def is_last_batch(self) -> bool:
        return self.fit_loop.is_last_batch

    @property
    def num_training_batches(self) -> int | float:
        return self.fit_loop.num_training_batches

    @property
    def num_sanity_val_batches(self) -> list[int | float]:
        val = self.fit_loop.val_loop
        return [min(self.num_sanity_val_steps, n) for n in (val.max_batches if val is not None else [])]

    @property
    def num_val_batches(self) -> list[int | float]:
        if self.state.fn == TrainerFn.VALIDATING:
            return self.validate_loop.max_batches
        val = self.fit_loop.val_loop
        return val.max_batches if val is not None else []

    @property
    def num_test_batches(self) -> list[int | float]:
        return self.test_loop.max_batches

    @property
    def num_predict_batches(self) -> list[int | float]:
        return self.predict_loop.max_batches

    @property
    def train_dataloader(self) -> Any:
        """The training loader(s) of ``fit``, in the shape given (a list of loaders stays a list)."""
        if self.fit_loop.train_dataloader is None:
            return None
        return self._data.sources.get("train", self.fit_loop.train_dataloader)

    @property
    def val_dataloaders(self) -> Any:
        loop = self.validate_loop if self.state.fn == TrainerFn.VALIDATING else self.fit_loop.val_loop
        return self._data.sources.get("val") if loop is not None and loop.loaders else None

    @property
    def test_dataloaders(self) -> Any:
        return self._data.sources.get("test") if self.test_loop.loaders else None

    @property
    def predict_dataloaders(self) -> Any:
        return self._data.sources.get("predict") if self.predict_loop.loaders else None

    @property
    def enable_validation(self) -> bool:
        module = self._module
        return (
            module is not None
            and self._data.is_defined("val")
            and self._hooks.module_hook("validation_step") is not None
            and self.limit_val_batches > 0
        )

    @property
    def estimated_stepping_batches(self) -> int | float:
        max_epochs = self.max_epochs
        if max_epochs is None or max_epochs == -1:
            return float("inf") if self.max_steps == -1 else self.max_steps
        if self.fit_loop.train_dataloader is None:
            self.fit_loop.setup_data()
        total = self.num_training_batches
        if total == float("inf"):
            return self.max_steps
        steps = math.ceil(total / self.accumulate_grad_batches) * max(max_epochs, 1)
        return min(steps, self.max_steps) if self.max_steps != -1 else steps

    # -- metrics ---------------------------------------------------------------------------------
    @property
    def callback_metrics(self) -> dict[str, torch.Tensor]:
        return self._logger_connector.callback_metrics

    @property
    def logged_metrics(self) -> dict[str, torch.Tensor]:
        return self._logger_connector.logged_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, Any]:
        return self._logger_connector.progress_bar_metrics

    # -- the model, data and devices ---------------------------------------------------------------
    @property
    def lightning_module(self) -> Any:
        return self._module

    @property
    def model(self) -> Any:
        return self.strategy.model if self.strategy.model is not None else self._module

    @property
    def datamodule(self) -> "LightningDataModule | None":
        return self._data.datamodule

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)

    @property
    def global_rank(self) -> int:
        return self.strategy.global_rank

    @property
    def local_rank(self) -> int:
        return self.strategy.local_rank

    @property
    def node_rank(self) -> int:
        return self.strategy.node_rank

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    @property
    def is_global_zero(self) -> bool:
        return self.strategy.is_global_zero

    @property
    def ckpt_path(self) -> str | None:
        return self._ckpt_path

    # -- outputs -----------------------------------------------------------------------------------
    @property
    def default_root_dir(self) -> str:
        if _fs.is_local(self._default_root_dir):
            return os.path.normpath(os.path.expanduser(self._default_root_dir))
        return self._default_root_dir

    @property
    def logger(self) -> Any:
        return self.loggers[0] if self.loggers else None

    @logger.setter
    def logger(self, logger: Any) -> None:
        self.loggers = [logger] if logger else []

    @property
    def log_dir(self) -> str | None:
        if not self.loggers:
            return self.default_root_dir
        first = self.loggers[0]
        return getattr(first, "log_dir", None) or getattr(first, "save_dir", None)

    @property
    def checkpoint_callbacks(self) -> list[Any]:
        return [c for c in self.callbacks if is_checkpoint(c)]

    @property
    def checkpoint_callback(self) -> Any:
        found = self.checkpoint_callbacks
        return found[0] if found else None

    @property
    def early_stopping_callbacks(self) -> list[Any]:
        return [c for c in self.callbacks if is_early_stopping(c)]

    @property
    def early_stopping_callback(self) -> Any:
        found = self.early_stopping_callbacks
        return found[0] if found else None

    @property
    def progress_bar_callback(self) -> Any:
        return next((c for c in self.callbacks if is_progress_bar(c)), None)
