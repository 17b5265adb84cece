"""Building checkpoint dicts from a run, and putting a run back from one (``ckpt_path=``)."""

from __future__ import annotations

import copy
import os
import re
import warnings
from typing import TYPE_CHECKING, Any

import torch

from . import _fs
from ._callback_setup import is_checkpoint
from ._checkpoint import load_checkpoint, require_trainer_checkpoint
from ._errors import CheckpointError, MisconfigurationException
from ._hparams import instantiate_from_hparams
from ._rank_zero import rank_zero_warn
from ._rng import capture_rng
from ._state import TrainerFn

if TYPE_CHECKING:
    from ._trainer import Trainer

VERSION = "2.6.0"  # the PL checkpoint format these files follow
_LAST = re.compile(r"^last(-v?\d+)?$")


def dump_checkpoint(trainer: Trainer, weights_only: bool = False) -> dict[str, Any]:
    module = trainer.lightning_module
    checkpoint: dict[str, Any] = {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "pytorch-lightning_version": VERSION,
        "state_dict": module.state_dict(),
        "loops": {
            "fit_loop": trainer.fit_loop.state_dict(),
            "validate_loop": {},
            "test_loop": {},
            "predict_loop": {},
        },
    }
    if not weights_only:
        checkpoint["callbacks"] = {}
        for callback in trainer.callbacks:
            state = (
                trainer._call_callback_method(callback, "state_dict")
                if hasattr(callback, "state_dict")
                else None
            )
            if state:
                checkpoint["callbacks"][callback.state_key] = state
        checkpoint["optimizer_states"] = [opt.state_dict() for opt in trainer.optimizers]
        checkpoint["lr_schedulers"] = [
            config.scheduler.state_dict() for config in trainer.lr_scheduler_configs
        ]
        precision_state = trainer.precision_plugin.state_dict()
        if precision_state:
            checkpoint[type(trainer.precision_plugin).__qualname__] = precision_state
        checkpoint["rng_states"] = capture_rng()
    datamodule = trainer.datamodule
    for obj in (module, datamodule):
        if obj is not None and obj.hparams:
            if hasattr(obj, "_hparams_name"):
                checkpoint[obj.CHECKPOINT_HYPER_PARAMS_NAME] = obj._hparams_name
            checkpoint[obj.CHECKPOINT_HYPER_PARAMS_KEY] = dict(obj.hparams)
    if datamodule is not None:
        dm_state = trainer._call_datamodule_hook("state_dict")
        if dm_state:
            checkpoint[type(datamodule).__qualname__] = dm_state
    if not weights_only:
        for callback in trainer.callbacks:
            if callable(getattr(callback, "on_save_checkpoint", None)):
                trainer._call_callback_method(callback, "on_save_checkpoint", trainer, module, checkpoint)
    trainer._call_module_hook("on_save_checkpoint", checkpoint)
    return checkpoint


def _last_candidates(trainer: Trainer) -> list[str]:
    found: set[str] = set()
    for callback in trainer.checkpoint_callbacks:
        crash_file = getattr(callback, "ckpt_path", None)  # OnExceptionCheckpoint's single file
        if isinstance(crash_file, str):
            if _fs.exists(crash_file):
                found.add(crash_file)
            continue
        finder = getattr(callback, "_find_last_checkpoints", None)
        if callable(finder):
            found |= {str(p) for p in finder(trainer)}
            continue
        folder = getattr(callback, "dirpath", None) or _default_ckpt_dir(trainer)
        for path in _fs.list_files(folder):
            stem, ext = os.path.splitext(os.path.basename(path))
            if ext == ".ckpt" and _LAST.match(stem):
                found.add(path)
    return sorted(found)


def _default_ckpt_dir(trainer: Trainer) -> str:
    if trainer.loggers:
        logger = trainer.loggers[0]
        save_dir = getattr(logger, "save_dir", None) or trainer.default_root_dir
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        return _fs.join(save_dir, str(logger.name), version, "checkpoints")
    return _fs.join(trainer.default_root_dir, "checkpoints")


def select_ckpt_path(trainer: Trainer, fn: TrainerFn, ckpt_path: str | None) -> str | None:
    on_exception = [cb for cb in trainer.callbacks if type(cb).__name__ == "OnExceptionCheckpoint"]
    if ckpt_path is None and on_exception and fn == TrainerFn.FITTING:
        # PL's fault tolerance: a fit with an on-exception checkpoint picks up from the last file
        ckpt_path = "last"
        rank_zero_warn(
            f"`.{fn.value}(ckpt_path=None)` was called without a model. The last model of the previous `fit` "
            f"call will be used. You can pass `{fn.value}(ckpt_path='best')` to use the best model or "
            f"`{fn.value}(ckpt_path='last')` to use the last model. If you pass a value, this warning will be "
            "silenced."
        )
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        candidates = _last_candidates(trainer)
        if not candidates:
            warnings.warn(
                f'.{fn.value}(ckpt_path="last") is set, but there is no last checkpoint available. No checkpoint '
                "will be loaded. HINT: Set `ModelCheckpoint(..., save_last=True)`.",
                UserWarning,
                stacklevel=4,
            )
            return None
        return max(candidates, key=_fs.modified)
    if ckpt_path == "best":
        if len(trainer.checkpoint_callbacks) > 1:
            rank_zero_warn(
                f'`.{fn.value}(ckpt_path="best")` is called with Trainer configured with multiple `ModelCheckpoint` '
                "callbacks. It will use the best checkpoint path from first checkpoint callback."
            )
        callback = trainer.checkpoint_callback
        if callback is None:
            raise ValueError(
                f'`.{fn.value}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured.'
            )
        best = getattr(callback, "best_model_path", None)
        if not best:
            if trainer.fast_dev_run:
                raise ValueError(
                    f'You cannot execute `.{fn.value}(ckpt_path="best")` with `fast_dev_run=True`. Please pass an '
                    f"exact checkpoint path to `.{fn.value}(ckpt_path=...)`"
                )
            raise ValueError(
                f'`.{fn.value}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured to save the best '
                "model."
            )
        return str(best)
    return str(ckpt_path)


def restore_modules_and_callbacks(trainer: Trainer, path: str) -> dict[str, Any]:
    """Load ``path`` and restore the module's weights and (when fitting) the callbacks' state."""
    checkpoint = load_checkpoint(path, map_location="cpu", weights_only=trainer._ckpt_weights_only)
    require_trainer_checkpoint(checkpoint, path)
    trainer._ckpt_path = path
    module = trainer.lightning_module
    trainer._call_module_hook("on_load_checkpoint", checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=module.strict_loading)
    except RuntimeError as exc:
        raise CheckpointError(
            path,
            f"its weights do not fit {type(module).__name__} ({exc}); load it into the model class that saved it",
        ) from exc
    datamodule = trainer.datamodule
    if datamodule is not None and type(datamodule).__qualname__ in checkpoint:
        trainer._call_datamodule_hook("load_state_dict", checkpoint[type(datamodule).__qualname__])
    if trainer.state.fn == TrainerFn.FITTING:
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.callbacks:
            if callable(getattr(callback, "on_load_checkpoint", None)):
                trainer._call_callback_method(callback, "on_load_checkpoint", trainer, module, checkpoint)
        present = set()
        for callback in trainer.callbacks:
            key = getattr(callback, "state_key", type(callback).__qualname__)
            present.add(key)
            state = states.get(key, states.get(type(callback)))
            if state and hasattr(callback, "load_state_dict"):
                trainer._call_callback_method(callback, "load_state_dict", copy.deepcopy(state))
        missing = [k for k in states if k not in present and not isinstance(k, type)]
        if missing:
            warnings.warn(
                "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided "
                f"during `Trainer` instantiation. Please add the following callbacks: {missing}.",
                UserWarning,
                stacklevel=4,
            )
    return checkpoint


def restore_training_state(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Optimizers, schedulers, precision scaler and loop counters: what ``fit`` needs to go on."""
    path = trainer._ckpt_path or "<checkpoint>"
    plugin = trainer.precision_plugin
    if type(plugin).__qualname__ in checkpoint:
        plugin.load_state_dict(checkpoint[type(plugin).__qualname__])
    if "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise CheckpointError(
            path,
            "holds weights only (saved with weights_only=True), so training cannot resume from it; pass it to "
            "Model.load_from_checkpoint and start a new fit, or resume from a full checkpoint",
        )
    states = checkpoint["optimizer_states"]
    if len(states) != len(trainer.optimizers):
        raise CheckpointError(
            path,
            f"has {len(states)} optimizer state(s) but configure_optimizers() returned {len(trainer.optimizers)}",
        )
    device = trainer.strategy.root_device
    for optimizer, state in zip(trainer.optimizers, states, strict=True):
        optimizer.load_state_dict(state)
        if device.type != "cpu":
            for param_state in optimizer.state.values():
                for key, value in param_state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        param_state[key] = value.to(device)
    schedulers = checkpoint.get("lr_schedulers", [])
    if len(schedulers) != len(trainer.lr_scheduler_configs):
        raise CheckpointError(
            path,
            f"has {len(schedulers)} lr scheduler state(s) but configure_optimizers() returned "
            f"{len(trainer.lr_scheduler_configs)}",
        )
    for config, state in zip(trainer.lr_scheduler_configs, schedulers, strict=True):
        config.scheduler.load_state_dict(state)
    fit_state = checkpoint["loops"].get("fit_loop")
    if fit_state:
        trainer.fit_loop.load_state_dict(fit_state, checkpoint.get("rng_states"))


def _read(
    path: str, map_location: Any, storage_options: dict[str, Any] | None, weights_only: bool | None = None
) -> dict[str, Any]:
    checkpoint = load_checkpoint(
        path, map_location=map_location, storage_options=storage_options, weights_only=weights_only
    )
    require_trainer_checkpoint(checkpoint, path)
    return checkpoint


def load_module_from_checkpoint(
    cls: type,
    path: str,
    map_location: Any,
    hparams_file: str | None,
    strict: bool | None,
    storage_options: dict[str, Any] | None,
    overrides: dict[str, Any],
    weights_only: bool | None = None,
) -> Any:
    checkpoint = _read(
        path, map_location if map_location is not None else "cpu", storage_options, weights_only
    )
    hparams = dict(checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY, {}))  # type: ignore[attr-defined]
    if hparams_file is not None:
        hparams.update(_read_hparams_file(hparams_file))
    try:
        module = instantiate_from_hparams(cls, hparams, overrides)
    except TypeError as exc:
        raise CheckpointError(
            path,
            f"cannot build {cls.__name__} from its saved hyperparameters {sorted(hparams)} ({exc}); call "
            f"self.save_hyperparameters() in __init__ or pass the missing arguments to load_from_checkpoint",
        ) from exc
    module.on_load_checkpoint(checkpoint)
    strict = module.strict_loading if strict is None else strict
    try:
        result = module.load_state_dict(checkpoint["state_dict"], strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(path, f"its weights do not fit {cls.__name__}: {exc}") from exc
    if not strict and (result.missing_keys or result.unexpected_keys):
        warnings.warn(
            f"Found keys that are not in the model state dict but in the checkpoint: {result.unexpected_keys}; "
            f"missing: {result.missing_keys}",
            UserWarning,
            stacklevel=3,
        )
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        module.to(map_location)
    return module


def load_datamodule_from_checkpoint(
    cls: type, path: str, map_location: Any, overrides: dict[str, Any]
) -> Any:
    checkpoint = _read(path, map_location if map_location is not None else "cpu", None)
    hparams = dict(checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY, {}))  # type: ignore[attr-defined]
    datamodule = instantiate_from_hparams(cls, hparams, overrides)
    state = checkpoint.get(cls.__qualname__)
    if state:
        datamodule.load_state_dict(state)
    return datamodule


def _read_hparams_file(path: str) -> dict[str, Any]:
    text = _fs.read_bytes(path).decode()
    if path.endswith((".yaml", ".yml")):
        import yaml

        loaded = yaml.safe_load(text)
    else:
        import json

        loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise MisconfigurationException(f"hparams_file {path!r} must hold a mapping of hyperparameters")
    return loaded


def is_checkpoint_callback(obj: Any) -> bool:
    return is_checkpoint(obj)
