"""One Trainer call, in PL 2.x's order::

configure_callbacks, prepare_data, setup(stage), configure_model, [restore weights and callbacks],
move to device (+DDP), configure_optimizers, on_fit_start, log hyperparameters,
[restore optimizers, schedulers, loops], sanity check, fit loop / eval loop / predict loop,
on_fit_end, teardown(stage), loggers finalized
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ._callback_setup import merge_model_callbacks
from ._errors import MisconfigurationException
from ._eval_loop import EvaluationLoop, accepts
from ._hooks import HookTable, is_overridden
from ._module import LightningModule
from ._optim import LightningOptimizer, check_scheduler_optimizers, parse_optimizers, scheduler_configs
from ._precision import Precision
from ._rank_zero import rank_zero_info
from ._rng import isolate_rng
from ._state import RunningStage, TrainerFn, TrainerStatus

if TYPE_CHECKING:
    from ._trainer import Trainer

_LEGACY_EPOCH_END = ("training_epoch_end", "validation_epoch_end", "test_epoch_end")


def handle_interrupt(trainer: Trainer, call: Callable[[], Any]) -> Any:
    """Run ``call``; on any exception tell the callbacks (``on_exception``) and the loggers, then re-raise.

    Ctrl+C is PL's graceful stop: ``trainer.interrupted`` becomes True, the same clean-up runs (with
    further Ctrl+C ignored meanwhile), and the call ends with ``SystemExit(1)`` rather than the
    KeyboardInterrupt, as PL 2.x does.
    """
    try:
        return call()
    except BaseException as exc:
        trainer.state.status = TrainerStatus.INTERRUPTED
        keyboard = isinstance(exc, KeyboardInterrupt)
        previous: Any = None
        if keyboard:
            rank_zero_info("\nDetected KeyboardInterrupt, attempting graceful shutdown ...")
            if threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _on_exception(trainer, exc)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if keyboard:
            raise SystemExit(1) from exc
        raise


def _on_exception(trainer: Trainer, exc: BaseException) -> None:
    link = trainer._work_link
    if link is not None:
        with contextlib.suppress(Exception):
            link.after_run("failed" if isinstance(exc, Exception) else "interrupted")
    module = trainer._module
    if module is not None:
        with contextlib.suppress(Exception):
            trainer._call("on_exception", exc)
        datamodule = trainer.datamodule
        if datamodule is not None:
            with contextlib.suppress(Exception):
                datamodule.on_exception(exc)
    for logger in trainer.loggers:
        with contextlib.suppress(Exception):
            logger.finalize("failed")
    trainer._data.shutdown_workers()
    trainer.strategy.teardown()
    trainer.state.stage = None


def run(trainer: Trainer, model: LightningModule, ckpt_path: str | None) -> Any:
    from ._restore import restore_modules_and_callbacks, restore_training_state, select_ckpt_path

    fn = trainer.state.fn
    assert fn is not None
    _configure_determinism(trainer)
    trainer._module = model
    model.trainer = trainer
    model_callbacks = trainer._call_module_hook("configure_callbacks")
    trainer.callbacks = merge_model_callbacks(trainer.callbacks, model_callbacks)
    for callback in trainer.callbacks:
        # PL lets a callback log as the module does: `self.log(...)` in its hooks
        with contextlib.suppress(AttributeError):
            callback.log, callback.log_dict = model.log, model.log_dict
    link = trainer._work_link
    if link is not None:  # inside a LightningWork: checkpoints into its folder, resume (see _in_work.py)
        ckpt_path = link.before_run(fn, ckpt_path)
    trainer._hooks = HookTable(trainer.callbacks, model, LightningModule)
    _verify(trainer, model, fn)
    _prepare_step_path(trainer, model)
    trainer.strategy.setup_environment()
    trainer.profiler.setup(fn.value, trainer.local_rank, trainer.log_dir)
    trainer._data.prepare_data()
    _call_setup_like("setup", trainer, fn)
    trainer._call_module_hook("configure_model")
    ckpt_path = select_ckpt_path(trainer, fn, ckpt_path)
    checkpoint = restore_modules_and_callbacks(trainer, ckpt_path) if ckpt_path else None
    trainer._logger_connector.reset_results()
    trainer._logger_connector.reset_metrics()
    model = trainer.precision_plugin.convert_module(model)  # type: ignore[assignment]
    trainer.strategy.setup_module(model, trainer.sync_batchnorm)
    if fn == TrainerFn.FITTING:
        _setup_optimizers(trainer, model)
        trainer._call("on_fit_start")
    _log_hyperparams(trainer)
    if checkpoint is not None and fn == TrainerFn.FITTING:
        restore_training_state(trainer, checkpoint)
    result = _run_stage(trainer, fn)
    trainer._data.shutdown_workers()
    trainer.strategy.teardown()
    trainer._logger_connector.teardown()
    if fn == TrainerFn.FITTING:
        trainer._call("on_fit_end")
    _call_setup_like("teardown", trainer, fn)
    model._current_fx_name = None
    for logger in trainer.loggers:
        logger.finalize("success")
    trainer.profiler.describe()
    trainer.state.status = TrainerStatus.FINISHED
    trainer.state.stage = None
    if link is not None:
        link.after_run("finished")
    return result


def _run_stage(trainer: Trainer, fn: TrainerFn) -> Any:
    model = trainer.lightning_module
    if fn == TrainerFn.FITTING:
        model.zero_grad(set_to_none=True)
        loop = trainer.fit_loop
        loop.val_loop = EvaluationLoop(trainer, RunningStage.VALIDATING)
        with isolate_rng():
            _sanity_check(trainer)
        trainer.training = True
        with torch.autograd.set_detect_anomaly(trainer.detect_anomaly):
            loop.run()
        return None
    if fn == TrainerFn.VALIDATING:
        return trainer.validate_loop.run()
    if fn == TrainerFn.TESTING:
        return trainer.test_loop.run()
    trainer.predicting = True
    return trainer.predict_loop.run(trainer._return_predictions)


def _sanity_check(trainer: Trainer) -> None:
    val_loop = trainer.fit_loop.val_loop
    if not (trainer.enable_validation and trainer.num_sanity_val_steps > 0) or val_loop is None:
        return
    trainer.sanity_checking = True
    connector = trainer._logger_connector
    connector.reset_results()
    connector.reset_metrics()
    trainer._call_callbacks("on_sanity_check_start")
    val_loop.run()
    trainer._call_callbacks("on_sanity_check_end")
    connector.reset_results()
    connector.reset_metrics()
    trainer.sanity_checking = False


def _call_setup_like(name: str, trainer: Trainer, fn: TrainerFn) -> None:
    """``setup``/``teardown``: the datamodule's, the callbacks', then the module's."""
    datamodule = trainer.datamodule
    if datamodule is not None:
        trainer._call_datamodule_hook(name, stage=fn)
    trainer._call_callbacks(name, fn)
    trainer._call_module_hook(name, stage=fn)


def _verify(trainer: Trainer, model: LightningModule, fn: TrainerFn) -> None:
    hooks = trainer._hooks
    if fn == TrainerFn.FITTING:
        if not is_overridden("training_step", model, LightningModule):
            raise MisconfigurationException(
                f"{type(model).__name__} has no `training_step()`. The Trainer needs at least `training_step()`, "
                "`train_dataloader()` (or dataloaders passed to fit) and `configure_optimizers()`."
            )
        if not is_overridden("configure_optimizers", model, LightningModule):
            raise MisconfigurationException(
                f"{type(model).__name__} has no `configure_optimizers()`: define it and return an optimizer, e.g. "
                "`return torch.optim.Adam(self.parameters(), lr=1e-3)`."
            )
        if not trainer._data.is_defined("train"):
            raise MisconfigurationException(
                f"No `train_dataloader()` method defined in {type(model).__name__} and no train dataloaders were "
                "passed: pass `trainer.fit(model, train_dataloaders=...)` or define `train_dataloader()`."
            )
        if trainer._data.is_defined("val") and hooks.module_hook("validation_step") is None:
            trainer._warn_once(
                "You passed in a `val_dataloader` but have no `validation_step`. Skipping val loop."
            )
        if not model.automatic_optimization:
            if trainer.gradient_clip_val is not None:
                raise MisconfigurationException(
                    "Automatic gradient clipping is not supported for manual optimization. Remove "
                    f"`Trainer(gradient_clip_val={trainer.gradient_clip_val})` or switch to automatic optimization."
                )
            if trainer.accumulate_grad_batches != 1:
                raise MisconfigurationException(
                    "Automatic gradient accumulation is not supported for manual optimization. Remove "
                    f"`Trainer(accumulate_grad_batches={trainer.accumulate_grad_batches})` or switch to automatic "
                    "optimization."
                )
    elif fn in (TrainerFn.VALIDATING, TrainerFn.TESTING):
        step = "validation_step" if fn == TrainerFn.VALIDATING else "test_step"
        kind = "val" if fn == TrainerFn.VALIDATING else "test"
        if hooks.module_hook(step) is None:
            raise MisconfigurationException(f"No `{step}()` method defined to run `Trainer.{fn.value}`.")
        if not trainer._data.is_defined(kind):
            raise MisconfigurationException(
                f"No `{kind}_dataloader()` method defined to run `Trainer.{fn.value}`: define it or pass dataloaders"
            )
    elif not trainer._data.is_defined("predict"):
        raise MisconfigurationException(
            "No `predict_dataloader()` method defined to run `Trainer.predict`: define it or pass dataloaders"
        )


def _prepare_step_path(trainer: Trainer, model: LightningModule) -> None:
    """Decide once per run what the per-batch code may skip."""
    hooks = trainer._hooks
    trainer._automatic_optimization = model.automatic_optimization
    trainer._collect_epoch_outputs = any(hooks.module_hook(n) is not None for n in _LEGACY_EPOCH_END)
    trainer._need_step_output = hooks.overridden("on_train_batch_end") or trainer._collect_epoch_outputs
    plugin = trainer.precision_plugin
    trainer._plain_precision = type(plugin) is Precision
    trainer._convert_input = hasattr(plugin, "dtype") and plugin.name.endswith("-true")
    datamodule = trainer.datamodule
    owner: dict[str, Any] = {}
    from ._datamodule import LightningDataModule

    for name in ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer"):
        use_dm = datamodule is not None and is_overridden(name, datamodule, LightningDataModule)
        owner[name] = getattr(datamodule if use_dm else model, name)
    trainer._batch_hook_owner = owner
    custom = any(
        is_overridden(n, model, LightningModule)
        or (datamodule is not None and is_overridden(n, datamodule, LightningDataModule))
        for n in owner
    )
    # CPU batches from a DataLoader are where they need to be; walking them would only cost time
    trainer._skip_transfer = not custom and trainer.strategy.root_device.type == "cpu"
    trainer._step_takes_idx = accepts(model.training_step, "batch_idx", 2)


def _setup_optimizers(trainer: Trainer, model: LightningModule) -> None:
    conf = trainer._call_module_hook("configure_optimizers")
    optimizers, schedulers, monitor = parse_optimizers(conf)
    automatic = model.automatic_optimization
    if automatic and len(optimizers) > 1:
        raise MisconfigurationException(
            "Training with multiple optimizers is only supported with manual optimization. Set "
            "`self.automatic_optimization = False`, then access your optimizers in `training_step` with "
            "`opt1, opt2, ... = self.optimizers()`."
        )
    configs = scheduler_configs(schedulers, monitor, automatic)
    check_scheduler_optimizers(optimizers, configs)
    trainer.optimizers = optimizers
    trainer.lr_scheduler_configs = configs
    trainer._train_step_fn = trainer.strategy.training_step_fn(model)
    trainer._lightning_optimizers = [LightningOptimizer(opt, trainer) for opt in optimizers]
    if not automatic:
        for lightning_opt in trainer._lightning_optimizers:
            lightning_opt._on_after_step = trainer.fit_loop.on_manual_optimizer_step


def _log_hyperparams(trainer: Trainer) -> None:
    if not trainer.loggers:
        return
    module = trainer.lightning_module
    datamodule = trainer.datamodule
    hparams: dict[str, Any] | None = None
    module_hp = module._log_hyperparams and bool(module.hparams_initial)
    dm_hp = datamodule is not None and datamodule._log_hyperparams and bool(datamodule.hparams_initial)
    if module_hp and dm_hp:
        assert datamodule is not None
        mine, theirs = module.hparams_initial, datamodule.hparams_initial
        clash = [k for k in mine if k in theirs and mine[k] != theirs[k]]
        if clash:
            raise RuntimeError(
                f"Error while merging hparams: the keys {clash} are present in both the LightningModule's and "
                "LightningDataModule's hparams but have different values."
            )
        hparams = {**mine, **theirs}
    elif module_hp:
        hparams = dict(module.hparams_initial)
    elif dm_hp:
        assert datamodule is not None
        hparams = dict(datamodule.hparams_initial)
    for logger in trainer.loggers:
        if hparams is not None:
            logger.log_hyperparams(hparams)
        log_graph = getattr(logger, "log_graph", None)
        if callable(log_graph):
            log_graph(module)
        logger.save()


def _configure_determinism(trainer: Trainer) -> None:
    deterministic = trainer._deterministic
    if deterministic is not None:
        import os

        torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")
        if deterministic:
            # cuBLAS refuses deterministic matmuls without a fixed workspace
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    benchmark = trainer._benchmark
    if benchmark is None and deterministic:
        benchmark = False
    if benchmark is not None:
        torch.backends.cudnn.benchmark = bool(benchmark)
