"""The public surface of the callbacks, loggers and tuner packages, reached as PL users reach it."""

from __future__ import annotations

import lightning_kernel.trainer as pl
from lightning_kernel.trainer import callbacks, loggers, tuner


def test_exported_members_are_pinned() -> None:
    assert callbacks.__all__ == [
        "BackboneFinetuning",
        "BaseFinetuning",
        "BasePredictionWriter",
        "BatchSizeFinder",
        "Callback",
        "Checkpoint",
        "EarlyStopping",
        "EarlyStoppingReason",
        "GradientAccumulationScheduler",
        "LambdaCallback",
        "LearningRateFinder",
        "LearningRateMonitor",
        "ModelCheckpoint",
        "ModelSummary",
        "OnExceptionCheckpoint",
        "ProgressBar",
        "RichModelSummary",
        "RichProgressBar",
        "RichProgressBarTheme",
        "TQDMProgressBar",
        "Timer",
    ]
    assert loggers.__all__ == ["CSVLogger", "DummyLogger", "Logger", "TensorBoardLogger"]
    assert tuner.__all__ == ["LRFinder", "Tuner"]
    for package in (callbacks, loggers, tuner):
        assert package.__all__ == sorted(package.__all__)
        assert all(hasattr(package, name) for name in package.__all__)


def test_reachable_through_the_pl_alias() -> None:
    assert pl.callbacks.ModelCheckpoint is callbacks.ModelCheckpoint
    assert pl.loggers.CSVLogger is loggers.CSVLogger
    assert pl.tuner.Tuner is tuner.Tuner
    assert pl.Callback is callbacks.Callback
    assert issubclass(callbacks.ModelCheckpoint, callbacks.Checkpoint)
    assert issubclass(callbacks.TQDMProgressBar, callbacks.ProgressBar)
    assert issubclass(callbacks.RichProgressBar, callbacks.ProgressBar)
    assert issubclass(loggers.TensorBoardLogger, loggers.Logger)


def test_every_pl_callback_hook_exists_on_the_base() -> None:
    hooks = {
        "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start", "on_sanity_check_end",
        "on_train_batch_start", "on_train_batch_end", "on_train_epoch_start", "on_train_epoch_end",
        "on_validation_epoch_start", "on_validation_epoch_end", "on_test_epoch_start", "on_test_epoch_end",
        "on_predict_epoch_start", "on_predict_epoch_end", "on_validation_batch_start", "on_validation_batch_end",
        "on_test_batch_start", "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
        "on_train_start", "on_train_end", "on_validation_start", "on_validation_end", "on_test_start",
        "on_test_end", "on_predict_start", "on_predict_end", "on_exception", "state_dict", "load_state_dict",
        "on_save_checkpoint", "on_load_checkpoint", "on_before_backward", "on_after_backward",
        "on_before_optimizer_step", "on_before_zero_grad",
    }  # fmt: skip
    missing = sorted(h for h in hooks if not callable(getattr(callbacks.Callback, h, None)))
    assert missing == []
    assert callbacks.Callback().state_key == "Callback"
