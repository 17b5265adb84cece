"""How ``Trainer(...)``'s arguments become its parts: accelerator, strategy, precision, loops,
callbacks, loggers, limits. Checked here, once, with errors that name the argument."""

import os
from typing import Any

from . import _data
from ._args import (
    check_positive_int,
    parse_accelerator,
    parse_max_time,
    parse_strategy,
    parse_val_check_time,
)
from ._callback_setup import configure_callbacks, configure_loggers
from ._data_connector import DataConnector
from ._errors import MisconfigurationException
from ._eval_loop import EvaluationLoop, PredictionLoop
from ._fit_loop import FitLoop
from ._hooks import HookTable
from ._in_work import attach as attach_to_work
from ._log import ensure_handler
from ._logger_connector import LoggerConnector
from ._module import LightningModule
from ._optim import LightningOptimizer, LRSchedulerConfig
from ._precision import make_precision, parse_precision
from ._profiler import make_profiler
from ._rank_zero import PossibleUserWarning, rank_zero_info, rank_zero_warn
from ._state import RunningStage, TrainerState
from ._strategy import Strategy, parse_devices


class TrainerInit:
    """``Trainer.__init__``'s second half: a mixin of ``Trainer``."""

    def _apply_args(self, **a: Any) -> None:
        trainer: Any = self  # the parts below take the whole Trainer
        ensure_handler()
        if a["plugins"]:
            raise MisconfigurationException(
                "plugins= is not supported by lightning_kernel.trainer; remove it"
            )
        self._warned: set[str] = set()
        self.state = TrainerState()
        self.should_stop = False
        self._start_time = 0.0
        self.barebones = bool(a["barebones"])
        if self.barebones:
            from . import _barebones

            _barebones.apply(a)
        # where the run happens
        self.accelerator = parse_accelerator(a["accelerator"])
        check_positive_int(a["num_nodes"], "num_nodes", 1)
        self.num_nodes = a["num_nodes"]
        self.device_ids = parse_devices(a["devices"], self.accelerator)
        kind = parse_strategy(a["strategy"], len(self.device_ids), self.num_nodes)
        self.strategy = Strategy(kind, self.accelerator, self.device_ids, self.num_nodes)
        self._precision = parse_precision(a["precision"] if a["precision"] is not None else "32-true")
        self.precision_plugin = make_precision(self._precision, self.strategy.root_device.type)
        # loop limits
        fast_dev_run = a["fast_dev_run"]
        if isinstance(fast_dev_run, bool):
            fast_dev_run = int(fast_dev_run)
        if not isinstance(fast_dev_run, int) or fast_dev_run < 0:
            raise MisconfigurationException(
                f"fast_dev_run={a['fast_dev_run']!r} is not a valid configuration. It should be >= 0."
            )
        self.fast_dev_run: int | bool = True if fast_dev_run == 1 else (fast_dev_run or False)
        self._max_steps = a["max_steps"]
        self._min_steps = a["min_steps"]
        self._max_time = parse_max_time(a["max_time"])
        max_epochs = a["max_epochs"]
        if fast_dev_run:
            max_epochs, self._max_steps = 1, fast_dev_run
        # None stays None until fit decides, as PL does: a Trainer made to validate needs no epoch limit
        if isinstance(max_epochs, int) and max_epochs < -1:
            raise MisconfigurationException(
                f"`max_epochs` must be a non-negative integer or -1. You passed in {max_epochs}."
            )
        if self._max_steps < -1:
            raise MisconfigurationException(
                f"`max_steps` must be a non-negative integer or -1 (infinite steps). You passed in {self._max_steps}."
            )
        self.limit_train_batches = _data.parse_limit(a["limit_train_batches"], "limit_train_batches")
        self.limit_val_batches = _data.parse_limit(a["limit_val_batches"], "limit_val_batches")
        self.limit_test_batches = _data.parse_limit(a["limit_test_batches"], "limit_test_batches")
        self.limit_predict_batches = _data.parse_limit(a["limit_predict_batches"], "limit_predict_batches")
        # time-based (a str, timedelta or dict): validate once that much wall-clock time has passed since the
        # last validation, checked after each training batch; val_check_interval keeps the value given
        self._val_check_time_interval = parse_val_check_time(a["val_check_interval"])
        if self._val_check_time_interval is None:
            self.val_check_interval = _data.parse_limit(a["val_check_interval"], "val_check_interval")
        else:
            self.val_check_interval = a["val_check_interval"]
        self._last_val_time = 0.0
        self.overfit_batches = (
            _data.parse_limit(a["overfit_batches"], "overfit_batches") if a["overfit_batches"] else 0
        )
        self.check_val_every_n_epoch = a["check_val_every_n_epoch"]
        if self.check_val_every_n_epoch is not None and not isinstance(self.check_val_every_n_epoch, int):
            raise MisconfigurationException(
                f"`check_val_every_n_epoch` should be an integer, found {self.check_val_every_n_epoch!r}."
            )
        if self.check_val_every_n_epoch is not None:
            check_positive_int(self.check_val_every_n_epoch, "check_val_every_n_epoch", 1)
        if self.check_val_every_n_epoch is None and isinstance(a["val_check_interval"], float):
            raise MisconfigurationException(
                "`val_check_interval` should be an integer or a time-based duration (str 'DD:HH:MM:SS', "
                "datetime.timedelta, or dict kwargs for timedelta) when `check_val_every_n_epoch=None`."
            )
        sanity = a["num_sanity_val_steps"]
        sanity = 2 if sanity is None else sanity
        check_positive_int(sanity, "num_sanity_val_steps", -1)
        self.num_sanity_val_steps: int | float = float("inf") if sanity == -1 else sanity
        if fast_dev_run:
            for stage in ("train", "val", "test", "predict"):
                setattr(self, f"limit_{stage}_batches", fast_dev_run)
            self.num_sanity_val_steps = 0
            self.val_check_interval = 1.0
            self._val_check_time_interval = None  # a few batches: no clock
            self.check_val_every_n_epoch = 1
        if self.overfit_batches:
            self.limit_train_batches = self.limit_val_batches = self.overfit_batches
        self.val_check_batch: int | float | None = float("inf")
        self.log_every_n_steps = 50 if a["log_every_n_steps"] is None else a["log_every_n_steps"]
        check_positive_int(self.log_every_n_steps, "log_every_n_steps", 0)
        check_positive_int(a["accumulate_grad_batches"], "accumulate_grad_batches", 1)
        self.accumulate_grad_batches: int = a["accumulate_grad_batches"]
        self.gradient_clip_val = a["gradient_clip_val"]
        self.gradient_clip_algorithm = a["gradient_clip_algorithm"]
        if self.gradient_clip_algorithm is not None and self.gradient_clip_algorithm.lower() not in (
            "norm",
            "value",
        ):
            raise MisconfigurationException(
                f"`gradient_clip_algorithm` {self.gradient_clip_algorithm} is invalid. Allowed algorithms: "
                "['value', 'norm']."
            )
        if self.gradient_clip_val is not None and (
            isinstance(self.gradient_clip_val, bool) or not isinstance(self.gradient_clip_val, (int, float))
        ):
            raise TypeError(f"`gradient_clip_val` should be an int or a float. Got {self.gradient_clip_val}.")
        self.reload_dataloaders_every_n_epochs = a["reload_dataloaders_every_n_epochs"]
        check_positive_int(self.reload_dataloaders_every_n_epochs, "reload_dataloaders_every_n_epochs", 0)
        self.inference_mode = a["inference_mode"]
        self.use_distributed_sampler = a["use_distributed_sampler"]
        self.sync_batchnorm = a["sync_batchnorm"]
        self.detect_anomaly = self._detect_anomaly = a["detect_anomaly"]
        self._deterministic = a["deterministic"]
        self._benchmark = a["benchmark"]
        # outputs
        self._default_root_dir = str(a["default_root_dir"] or os.getcwd())
        enable = not self.barebones
        self.enable_checkpointing = enable if a["enable_checkpointing"] is None else a["enable_checkpointing"]
        self.enable_progress_bar = enable if a["enable_progress_bar"] is None else a["enable_progress_bar"]
        self.enable_model_summary = enable if a["enable_model_summary"] is None else a["enable_model_summary"]
        self.loggers: list[Any] = configure_loggers(a["logger"], trainer.default_root_dir)
        if a["logger"] is None and not self.barebones:
            self.loggers = configure_loggers(True, trainer.default_root_dir)
        if fast_dev_run and self.loggers:
            from .loggers._base import DummyLogger

            self.loggers = [DummyLogger()]
        self.callbacks: list[Any] = configure_callbacks(
            a["callbacks"], self.enable_checkpointing, self.enable_progress_bar, self.enable_model_summary
        )
        self.profiler = make_profiler(a["profiler"])
        self._profiling = bool(getattr(self.profiler, "enabled", True))
        # run state
        self._module: Any = None
        self._data = DataConnector(trainer)
        self._logger_connector = LoggerConnector(trainer)
        self.fit_loop = FitLoop(trainer, a["min_epochs"], max_epochs)
        self.validate_loop = EvaluationLoop(trainer, RunningStage.VALIDATING, verbose=True)
        self.test_loop = EvaluationLoop(trainer, RunningStage.TESTING, verbose=True)
        self.predict_loop = PredictionLoop(trainer)
        self.optimizers: list[Any] = []
        self.lr_scheduler_configs: list[LRSchedulerConfig] = []
        self._lightning_optimizers: list[LightningOptimizer] = []
        self._hooks = HookTable([], None, LightningModule)
        self._ckpt_path: str | None = None
        self._ckpt_weights_only: bool | None = None
        self._automatic_optimization = True
        self._collect_epoch_outputs = False
        self._need_step_output = True
        self._plain_precision = True
        self._convert_input = False
        self._skip_transfer = True
        self._step_takes_idx = True
        self._train_step_fn: Any = None
        self._batch_hook_owner: dict[str, Any] = {}
        if fast_dev_run:
            rank_zero_info(
                f"Running in `fast_dev_run` mode: will run the requested loop using {fast_dev_run} batch(es). "
                "Logging and checkpointing is suppressed."
            )
        _log_device_info(self.accelerator)
        # last: the link adds its callback, and looks at the stack for the Work that runs this code
        self._work_link = attach_to_work(trainer)


def _log_device_info(accelerator: str) -> None:
    """PL's two lines about GPUs and TPUs, and its warning when a GPU sits unused."""
    import torch

    cuda = torch.cuda.is_available()
    mps = not cuda and torch.backends.mps.is_available()
    kind = " (cuda)" if cuda else " (mps)" if mps else ""
    rank_zero_info(f"GPU available: {cuda or mps}{kind}, used: {accelerator in ('cuda', 'mps')}")
    rank_zero_info("TPU available: False, using: 0 TPU cores")
    if (cuda and accelerator != "cuda") or (mps and accelerator != "mps"):
        rank_zero_warn(
            "GPU available but not used. You can set it by doing `Trainer(accelerator='gpu')`.",
            category=PossibleUserWarning,
        )
