"""The public surface of ``lightning_kernel.trainer`` (PL's names), and a lean import."""

from __future__ import annotations

import subprocess
import sys

import lightning_kernel.trainer as pl
import pytest


def test_exported_names_are_pinned() -> None:
    assert pl.__all__ == [
        "Callback",
        "CheckpointError",
        "LRSchedulerConfig",
        "LightningDataModule",
        "LightningModule",
        "LightningOptimizer",
        "MisconfigurationException",
        "RunningStage",
        "Trainer",
        "TrainerFn",
        "TrainerState",
        "TrainerStatus",
        "atomic_save",
        "callbacks",
        "core",
        "load_checkpoint",
        "loggers",
        "seed_everything",
        "tuner",
        "utilities",
    ]
    assert pl.__version__ == "2.6.0"
    for name in pl.__all__:
        assert getattr(pl, name) is not None


def test_one_import_change_reaches_pl_names() -> None:
    assert pl.callbacks.ModelCheckpoint and pl.callbacks.EarlyStopping and pl.callbacks.LearningRateMonitor
    assert pl.loggers.CSVLogger and pl.loggers.TensorBoardLogger
    assert pl.tuner.Tuner
    assert pl.Callback is pl.callbacks.Callback


def test_import_pulls_in_no_compiler_stack() -> None:
    probe = (
        "import sys, torch; before = set(sys.modules); import lightning_kernel.trainer; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('torch._dynamo', 'torch._inductor'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_seed_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import random

    import torch

    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # so the test leaves the variables as it found them
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    assert pl.seed_everything(42, verbose=False) == 42
    first = (random.random(), torch.rand(1).item())
    pl.seed_everything(42, verbose=False)
    assert (random.random(), torch.rand(1).item()) == first
    assert os.environ["PL_GLOBAL_SEED"] == "42"
