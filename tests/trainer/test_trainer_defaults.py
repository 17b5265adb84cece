"""Default loggers and callbacks (PL 2.x's), configure_callbacks, and the remaining switches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from lightning_kernel.trainer.callbacks import EarlyStopping, ModelCheckpoint


def test_defaults_match_pl(tmp_path: Path) -> None:
    trainer = pl.Trainer(default_root_dir=str(tmp_path), max_epochs=1)
    names = [type(c).__name__ for c in trainer.callbacks]
    assert names == ["TQDMProgressBar", "ModelSummary", "ModelCheckpoint"]  # checkpoints last
    assert type(trainer.logger).__name__ == "TensorBoardLogger"
    assert trainer.checkpoint_callback is trainer.callbacks[-1]
    assert trainer.progress_bar_callback is trainer.callbacks[0]
    trainer.fit(BoringModel())
    assert trainer.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "epoch=0-step=4.ckpt").exists()


def test_switching_defaults_off_conflicts_with_explicit_callbacks(tmp_path: Path) -> None:
    with pytest.raises(
        MisconfigurationException, match="enable_checkpointing=False` but found `ModelCheckpoint`"
    ):
        quiet_trainer(tmp_path, callbacks=[ModelCheckpoint()])
    bar = pl.callbacks.TQDMProgressBar()
    with pytest.raises(
        MisconfigurationException, match="enable_progress_bar=False` but found `TQDMProgressBar`"
    ):
        quiet_trainer(tmp_path, callbacks=[bar])
    barebones = pl.Trainer(default_root_dir=str(tmp_path), barebones=True, max_epochs=1)
    assert barebones.callbacks == [] and barebones.loggers == []


def test_configure_callbacks_replaces_trainer_callbacks_of_the_same_type(tmp_path: Path) -> None:
    trainer_es = EarlyStopping(monitor="val_loss", patience=5)
    model_es = EarlyStopping(monitor="val_loss", patience=1)

    class Model(BoringModel):
        def configure_callbacks(self) -> Any:
            return [model_es, ModelCheckpoint(dirpath=tmp_path / "ck")]

    trainer = quiet_trainer(tmp_path, callbacks=[trainer_es], enable_checkpointing=True)
    trainer.fit(Model())
    assert trainer_es not in trainer.callbacks and model_es in trainer.callbacks
    assert isinstance(trainer.callbacks[-1], ModelCheckpoint)
    assert len(trainer.checkpoint_callbacks) == 1  # the model's replaced the default one


@pytest.mark.parametrize("inference_mode", [True, False])
def test_evaluation_runs_without_gradients(tmp_path: Path, inference_mode: bool) -> None:
    seen: list[tuple[bool, bool]] = []

    class Model(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            return super().validation_step(batch, batch_idx)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            assert torch.is_grad_enabled() and self.device == torch.device("cpu")
            return super().training_step(batch, batch_idx)

    quiet_trainer(tmp_path, inference_mode=inference_mode, limit_val_batches=1, num_sanity_val_steps=0).fit(
        Model()
    )
    assert seen == [(inference_mode, False)]


def test_detect_anomaly_reports_the_forward_op(tmp_path: Path) -> None:
    class NaN(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return torch.sqrt(self(batch) * 0 - 1).sum()

    with pytest.raises(RuntimeError, match="SqrtBackward0"), pytest.warns(UserWarning):
        quiet_trainer(tmp_path, detect_anomaly=True, limit_val_batches=0).fit(NaN())


def test_early_stopping_and_checkpoint_callbacks_see_the_trainer(tmp_path: Path) -> None:
    class Worse(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("score", float(self.current_epoch))

    es = EarlyStopping(monitor="score", patience=2, mode="min")
    trainer = quiet_trainer(tmp_path, callbacks=[es], max_epochs=10, num_sanity_val_steps=0)
    trainer.fit(Worse())
    assert trainer.current_epoch == 3 and trainer.should_stop
    assert trainer.early_stopping_callback is es
