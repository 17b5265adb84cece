"""``ModelCheckpoint``: save the model when a monitored metric improves, every N epochs or steps.

Behaviour follows PyTorch Lightning 2.x's callback of the same name, so its documentation applies:
file names from templates (``{epoch}-{val_loss:.2f}`` -> ``epoch=3-val_loss=0.12.ckpt``), top-k
bookkeeping that deletes files falling out of the top k, ``last.ckpt`` (or a link to the newest
file), ``-v1`` suffixes on name collisions, and state kept in the checkpoint so a resumed run goes on
with the same top k. Files are written by ``trainer.save_checkpoint``, which writes atomically
through fsspec, so ``dirpath`` may be any fsspec URL (``s3://bucket/run``).
"""

import os
import re
import time
import warnings
from copy import deepcopy
from datetime import timedelta
from typing import Any, Literal

import torch

from .. import _fs
from .._errors import MisconfigurationException
from .._rank_zero import rank_zero_info
from . import _checkpoint_files as files
from ._base import Callback
from ._checkpoint_args import validate_config
from ._checkpoint_mixin import CheckpointFiles
from ._ranks import all_ranks, broadcast

Trainer = Any
LightningModule = Any


class Checkpoint(Callback):
    """The base of callbacks that save checkpoints; the Trainer finds them by this type."""


class ModelCheckpoint(CheckpointFiles, Checkpoint):
    """Save checkpoints periodically, or the top k by a monitored metric.

    Args:
        dirpath: folder for the files (any fsspec URL); by default
            ``<logger.save_dir>/<logger.name>/<version>/checkpoints``, or
            ``<default_root_dir>/checkpoints`` without a logger.
        filename: a template such as ``"{epoch}-{val_loss:.2f}"``; default ``"{epoch}-{step}"``.
        monitor: the logged metric to rank checkpoints by; ``None`` keeps the latest only.
        verbose: print each decision.
        save_last: also save ``last.ckpt`` whenever a checkpoint is saved (PL 2.6: not at an epoch or
            validation end that saved nothing), and at the end of training if nothing was saved at all;
            ``"link"`` makes it a link to the newest file.
        save_top_k: keep the best k (``-1``: all, ``0``: none).
        save_weights_only: only the model's weights, not optimizer and loop state.
        mode: ``"min"`` or ``"max"``: which direction of ``monitor`` is better.
        auto_insert_metric_name: ``{epoch}`` gives ``epoch=3`` rather than ``3``.
        every_n_train_steps, train_time_interval, every_n_epochs: when to save (at most one of them);
            by default after every epoch.
        save_on_train_epoch_end: save at the end of the training epoch rather than after validation;
            by default after validation when validation runs every epoch and more than once per epoch.
        enable_version_counter: add ``-v1``, ``-v2`` to a name that already exists instead of overwriting.
        save_on_exception: when the run fails or is interrupted, save a checkpoint of the state of that
            moment (and ``last.ckpt`` with ``save_last``).

    A step- or time-interval save that monitors a metric logged by validation waits for validation:
    it happens at the end of the next validation, with that validation's value.
    """

    CHECKPOINT_JOIN_CHAR = files.JOIN_CHAR
    CHECKPOINT_EQUALS_CHAR = files.EQUALS_CHAR
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: str | os.PathLike[str] | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | Literal["link"] | None = None,
        save_top_k: int = 1,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
        save_on_exception: bool = False,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.verbose = verbose
        self.save_last = save_last
        self.save_top_k = save_top_k
        self.save_weights_only = save_weights_only
        self.auto_insert_metric_name = auto_insert_metric_name
        self._save_on_train_epoch_end = save_on_train_epoch_end
        self._enable_version_counter = enable_version_counter
        self._last_global_step_saved = 0
        self._last_time_checked: float | None = None
        self._last_checkpoint_saved = ""
        self._val_has_run = False
        self._deferred_state: dict[str, Any] | None = None
        self.save_on_exception = save_on_exception
        self._defer_save_until_validation = False
        self.current_score: torch.Tensor | None = None
        self.best_k_models: dict[str, torch.Tensor] = {}
        self.kth_best_model_path = ""
        self.best_model_score: torch.Tensor | None = None
        self.best_model_path = ""
        self.last_model_path = ""

        if mode not in ("min", "max"):
            raise MisconfigurationException(f"`mode` can be min, max but got {mode}")
        self.mode = mode
        self.kth_value = torch.tensor(float("inf") if mode == "min" else float("-inf"))
        if every_n_train_steps is None and every_n_epochs is None and train_time_interval is None:
            every_n_epochs, every_n_train_steps = 1, 0
        self._every_n_train_steps = every_n_train_steps or 0
        self._every_n_epochs = every_n_epochs or 0
        self._train_time_interval = train_time_interval
        validate_config(
            self.monitor,
            self.save_top_k,
            self.save_last,
            self._every_n_train_steps,
            self._every_n_epochs,
            self._train_time_interval,
        )
        self.dirpath: str | None = None
        self._set_dirpath(None if dirpath is None else os.fspath(dirpath))
        self.filename = filename

    # -- configuration ------------------------------------------------------------------------------------
    def _set_dirpath(self, dirpath: str | None) -> None:
        if dirpath is not None and files.is_local(dirpath):
            dirpath = os.path.realpath(os.path.expanduser(dirpath))
        self.dirpath = dirpath

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    @property
    def every_n_epochs(self) -> int:
        return self._every_n_epochs

    @property
    def every_n_train_steps(self) -> int:
        return self._every_n_train_steps

    # -- hooks --------------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        dirpath = broadcast(trainer, self._resolve_dirpath(trainer))
        self._set_dirpath(dirpath)
        if self.save_last == "link" and not files.is_local(dirpath):
            raise ValueError(
                f"`ModelCheckpoint(save_last='link')` is only supported for local file paths, got `dirpath={dirpath}`."
            )
        if self._deferred_state is not None:
            state, self._deferred_state = self._deferred_state, None
            self.load_state_dict(state)
        if trainer.is_global_zero and stage == "fit":
            self._warn_if_dir_not_empty()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_time_checked = time.monotonic()
        self._val_has_run = False

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # the common configuration (save per epoch) returns here: this runs after every step
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        skip_batch = self._every_n_train_steps < 1 or trainer.global_step % self._every_n_train_steps != 0
        skip_time = True
        now = time.monotonic()
        if self._train_time_interval is not None:
            last = self._last_time_checked
            skip_time = last is None or (now - last) < self._train_time_interval.total_seconds()
            # clocks differ across ranks: rank zero decides, or some ranks would wait in a save forever
            skip_time = bool(broadcast(trainer, skip_time))
        if skip_batch and skip_time:
            return
        if not skip_time:
            self._last_time_checked = now
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and (self.monitor not in candidates or self._validation_follows(trainer)):
            # a metric of validation: saved at the end of the next validation, with a fresh value
            self._defer_save_until_validation = True
            return
        self._save_topk_checkpoint(trainer, candidates, final=False)
        self._save_last_checkpoint(trainer, candidates)

    def _validation_follows(self, trainer: Trainer) -> bool:
        """Whether validation runs right after this batch, so the monitored value now is stale."""
        if self._should_save_on_train_epoch_end(trainer) or not trainer.fit_loop.is_last_batch:
            return False
        if not trainer.enable_validation or self._num_val_batches(trainer) == 0:
            return False
        every = trainer.check_val_every_n_epoch
        return every is None or (trainer.current_epoch + 1) % every == 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._should_skip_saving_checkpoint(trainer) or not self._should_save_on_train_epoch_end(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates, final=True)
        if self._saved_this_step(trainer):
            self._save_last_checkpoint(trainer, candidates)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._val_has_run = True
        if self._defer_save_until_validation and not self._should_skip_saving_checkpoint(trainer):
            self._defer_save_until_validation = False
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates, final=False)
            self._save_last_checkpoint(trainer, candidates)
            return
        if self._should_skip_saving_checkpoint(trainer) or self._should_save_on_train_epoch_end(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates, final=True)
        if self._saved_this_step(trainer):
            self._save_last_checkpoint(trainer, candidates)

    def _saved_this_step(self, trainer: Trainer) -> bool:
        """PL 2.6: ``last`` follows the checkpoints: it is saved at an epoch's or validation's end only when a
        checkpoint was saved at this step (or, as a link, when there is one to point at)."""
        if self._last_global_step_saved == trainer.global_step:
            return True
        return self.save_last == "link" and bool(self._last_checkpoint_saved)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # PL 2.6: save_last=True leaves a last checkpoint even when no other save happened during training
        if self.save_last and not self._last_checkpoint_saved and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not self._should_save_on_exception(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        filepath = self.format_checkpoint_name(metrics=candidates)
        self._save_checkpoint(trainer, filepath)
        self._save_last_checkpoint(trainer, candidates)
        rank_zero_info(
            f"An {type(exception).__name__} was raised with message: {exception}, saved checkpoint to {filepath}"
        )

    def _should_save_on_exception(self, trainer: Trainer) -> bool:
        return bool(
            self.save_on_exception
            and not trainer.fast_dev_run
            and not trainer.sanity_checking
            and trainer.state.fn == "fit"
            and self.dirpath is not None
            and self._last_global_step_saved != trainer.global_step
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "best_model_score": self.best_model_score,
            "best_model_path": self.best_model_path,
            "current_score": self.current_score,
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.dirpath is None:
            # the folder is known only once setup() asked the logger: finish restoring there
            self._deferred_state = state_dict
            return
        saved_dirpath = state_dict.get("dirpath", self.dirpath)
        if saved_dirpath == self.dirpath:
            self.best_model_score = state_dict["best_model_score"]
            self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
            self.kth_value = state_dict.get("kth_value", self.kth_value)
            self.best_k_models = dict(state_dict.get("best_k_models", self.best_k_models))
            self.last_model_path = state_dict.get("last_model_path", self.last_model_path)
            self.current_score = state_dict.get("current_score", self.current_score)
        else:
            warnings.warn(
                f"The dirpath has changed from {saved_dirpath!r} to {self.dirpath!r}, therefore `best_model_score`, "
                "`kth_best_model_path`, `kth_value`, `last_model_path` and `best_k_models` won't be reloaded. Only "
                "`best_model_path` will be reloaded.",
                stacklevel=2,
            )
        self.best_model_path = state_dict["best_model_path"]

    def _find_last_checkpoints(self, trainer: Trainer) -> set[str]:
        """The ``last*.ckpt`` files in this callback's folder (the candidates of ``ckpt_path="last"``)."""
        folder = self.dirpath or self._resolve_dirpath(trainer)
        pattern = re.compile(rf"^{self.CHECKPOINT_NAME_LAST}(-v?\d+)?{re.escape(self.FILE_EXTENSION)}$")
        return {p for p in _fs.list_files(folder) if pattern.match(os.path.basename(p))}

    # -- when to save -------------------------------------------------------------------------------------
    def _should_skip_saving_checkpoint(self, trainer: Trainer) -> bool:
        return bool(
            trainer.fast_dev_run
            or trainer.state.fn != "fit"
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        )

    def _should_save_on_train_epoch_end(self, trainer: Trainer) -> bool:
        if self._save_on_train_epoch_end is not None:
            return self._save_on_train_epoch_end
        # validation on a clock: it may come at any batch, so save after each one
        if getattr(trainer, "_val_check_time_interval", None) is not None:
            return False
        # validation every few epochs: its end is the only place its metrics are certain to exist
        if trainer.check_val_every_n_epoch != 1:
            return False
        if self._num_val_batches(trainer) == 0:
            return True
        # validation more than once per epoch: save after each validation instead
        return bool(trainer.val_check_interval == 1.0)

    @staticmethod
    def _num_val_batches(trainer: Trainer) -> float:
        num = trainer.num_val_batches
        return float(sum(num)) if isinstance(num, list | tuple) else float(num or 0)

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, torch.Tensor]:
        candidates = deepcopy(dict(trainer.callback_metrics))
        epoch = candidates.get("epoch")
        candidates["epoch"] = (
            epoch.int() if isinstance(epoch, torch.Tensor) else torch.tensor(trainer.current_epoch)
        )
        step = candidates.get("step")
        candidates["step"] = (
            step.int() if isinstance(step, torch.Tensor) else torch.tensor(trainer.global_step)
        )
        return candidates

    # -- top k --------------------------------------------------------------------------------------------
    def _save_topk_checkpoint(
        self, trainer: Trainer, candidates: dict[str, torch.Tensor], final: bool = False
    ) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is None:
            self._save_none_monitor_checkpoint(trainer, candidates)
            return
        current = candidates.get(self.monitor)
        if current is None:
            available = sorted(k for k in candidates if k not in ("epoch", "step"))
            message = (
                f"ModelCheckpoint(monitor={self.monitor!r}) could not find the monitored key in the logged "
                f"metrics: {available}. HINT: did you call `self.log({self.monitor!r}, value)` in the "
                "LightningModule, or mean one of the keys above?"
            )
            # before validation first runs, a val metric cannot exist yet: PL only warns then. After it,
            # or at an epoch's end with no validation at all, the key will never come: stop the run.
            if self._val_has_run or (final and self._num_val_batches(trainer) == 0):
                raise MisconfigurationException(message)
            warnings.warn(message, stacklevel=2)
            return
        self._save_monitor_checkpoint(trainer, candidates, current)

    def check_monitor_top_k(self, trainer: Trainer, current: torch.Tensor | None = None) -> bool:
        """Whether ``current`` earns a place in the top k."""
        if current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        better = torch.lt if self.mode == "min" else torch.gt
        decision = bool(better(current, self.best_k_models[self.kth_best_model_path]))
        return all_ranks(trainer, decision)

    def _save_monitor_checkpoint(
        self, trainer: Trainer, candidates: dict[str, torch.Tensor], current: torch.Tensor
    ) -> None:
        if self.check_monitor_top_k(trainer, current):
            self._update_best_and_save(current, trainer, candidates)
        elif self.verbose and trainer.is_global_zero:
            epoch, step = int(candidates["epoch"]), int(candidates["step"])
            rank_zero_info(
                f"Epoch {epoch:d}, global step {step:d}: {self.monitor!r} was not in top {self.save_top_k}"
            )

    def _save_none_monitor_checkpoint(self, trainer: Trainer, candidates: dict[str, torch.Tensor]) -> None:
        filepath = self._get_metric_interpolated_filepath_name(candidates, trainer, self.best_model_path)
        # set before saving: the path is part of the state written into the file
        previous, self.best_model_path = self.best_model_path, filepath
        self._save_checkpoint(trainer, filepath)
        if self.save_top_k == 1 and previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _update_best_and_save(
        self, current: torch.Tensor, trainer: Trainer, candidates: dict[str, torch.Tensor]
    ) -> None:
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        del_filepath = None
        if len(self.best_k_models) == k and k > 0:
            del_filepath = self.kth_best_model_path
            self.best_k_models.pop(del_filepath)
        if isinstance(current, torch.Tensor) and torch.isnan(current):
            # a NaN would win every comparison it loses: rank it worst
            current = torch.tensor(
                float("inf") if self.mode == "min" else float("-inf"), device=current.device
            )
        filepath = self._get_metric_interpolated_filepath_name(candidates, trainer, del_filepath)
        self.current_score = current
        self.best_k_models[filepath] = current
        if len(self.best_k_models) == k:
            worst = max if self.mode == "min" else min
            self.kth_best_model_path = worst(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        best = min if self.mode == "min" else max
        self.best_model_path = best(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose and trainer.is_global_zero:
            epoch, step = int(candidates["epoch"]), int(candidates["step"])
            rank_zero_info(
                f"Epoch {epoch:d}, global step {step:d}: {self.monitor!r} reached {float(current):0.5f} "
                f"(best {float(self.best_model_score):0.5f}), saving model to {filepath!r} as top {k}"
            )
        self._save_checkpoint(trainer, filepath)
        if del_filepath and self._should_remove_checkpoint(trainer, del_filepath, filepath):
            self._remove_checkpoint(trainer, del_filepath)

    def _save_last_checkpoint(self, trainer: Trainer, candidates: dict[str, torch.Tensor]) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while self.file_exists(filepath, trainer) and filepath != self.last_model_path:
                filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST, ver=version)
                version += 1
        previous, self.last_model_path = self.last_model_path, filepath
        if self.save_last == "link" and self._last_checkpoint_saved and self.save_top_k != 0:
            self._link_checkpoint(trainer, self._last_checkpoint_saved, filepath)
        else:
            self._save_checkpoint(trainer, filepath)
        if previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)
