"""The default loggers and callbacks PL 2.x adds, and ``configure_callbacks`` merging.

The callback and logger classes are imported only when needed, so the Trainer works (and its
tests run) whether or not a given callback module is importable.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from ._errors import MisconfigurationException
from ._hooks import class_names

_CHECKPOINT = {"ModelCheckpoint", "Checkpoint"}
_PROGRESS = {"ProgressBar", "TQDMProgressBar", "RichProgressBar"}
_SUMMARY = {"ModelSummary", "RichModelSummary"}
_EARLY = {"EarlyStopping"}


def _lookup(package: str, name: str) -> Any:
    try:
        module = importlib.import_module(f"lightning_kernel.trainer.{package}")
    except ImportError:
        return None
    return getattr(module, name, None)


def is_checkpoint(cb: Any) -> bool:
    return bool(_CHECKPOINT & class_names(cb))


def is_progress_bar(cb: Any) -> bool:
    return bool(_PROGRESS & class_names(cb))


def is_early_stopping(cb: Any) -> bool:
    return bool(_EARLY & class_names(cb))


def is_model_summary(cb: Any) -> bool:
    return bool(_SUMMARY & class_names(cb))


def configure_loggers(logger: Any, default_root_dir: str) -> list[Any]:
    if not logger:
        return []
    if logger is True:
        try:
            import tensorboard  # noqa: F401  (the default needs it installed)

            cls = _lookup("loggers", "TensorBoardLogger")
        except ImportError:
            cls = None
        if cls is None:
            cls = _lookup("loggers", "CSVLogger")
        if cls is None:
            warnings.warn("no logger class is available; running without a logger", UserWarning, stacklevel=3)
            return []
        return [cls(save_dir=default_root_dir)]
    if isinstance(logger, Iterable) and not isinstance(logger, (str, bytes)):
        return list(logger)
    return [logger]


def configure_callbacks(
    callbacks: Any, enable_checkpointing: bool, enable_progress_bar: bool, enable_model_summary: bool
) -> list[Any]:
    if callbacks is None:
        callbacks = []
    elif not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    result = list(callbacks)
    has_ckpt = any(is_checkpoint(c) for c in result)
    if has_ckpt and not enable_checkpointing:
        raise MisconfigurationException(
            "Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint` in callbacks list."
        )
    if enable_checkpointing and not has_ckpt:
        cls = _lookup("callbacks", "ModelCheckpoint")
        if cls is not None:
            result.append(cls())
    bars = [c for c in result if is_progress_bar(c)]
    if len(bars) > 1:
        raise MisconfigurationException(
            "You added multiple progress bar callbacks to the Trainer, but currently only one progress bar is supported."
        )
    if bars and not enable_progress_bar:
        raise MisconfigurationException(
            f"Trainer was configured with `enable_progress_bar=False` but found `{type(bars[0]).__name__}` in "
            "callbacks list."
        )
    if enable_progress_bar and not bars:
        cls = _lookup("callbacks", "TQDMProgressBar")
        if cls is not None:
            result.append(cls())
    if enable_model_summary and not any(is_model_summary(c) for c in result):
        rich_bar = any("RichProgressBar" in class_names(c) for c in result)
        cls = _lookup("callbacks", "RichModelSummary") if rich_bar else None
        cls = cls or _lookup("callbacks", "ModelSummary")
        if cls is not None:
            result.append(cls())
    return reorder(result)


def reorder(callbacks: Sequence[Any]) -> list[Any]:
    """Checkpoint callbacks last, so they see what the others logged (PL's order)."""
    others = [c for c in callbacks if not is_checkpoint(c)]
    return others + [c for c in callbacks if is_checkpoint(c)]


def merge_model_callbacks(trainer_callbacks: Sequence[Any], model_callbacks: Any) -> list[Any]:
    """``configure_callbacks()`` results replace Trainer callbacks of the same (or a parent) type."""
    if not model_callbacks:
        return list(trainer_callbacks)
    if not isinstance(model_callbacks, Sequence):
        model_callbacks = [model_callbacks]
    base = _lookup("callbacks", "Callback")
    trainer_types = {type(c) for c in trainer_callbacks} - ({base} if base is not None else set())
    override: set[type] = set()
    for model_type in {type(c) for c in model_callbacks}:
        for trainer_type in trainer_types:
            if issubclass(model_type, trainer_type):
                override.add(trainer_type)
                break
    kept = [c for c in trainer_callbacks if type(c) not in override]
    return reorder([*kept, *model_callbacks])
