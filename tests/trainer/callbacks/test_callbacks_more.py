"""More Trainer-driven cases: bars in every stage, time- and validation-triggered checkpoints,
EarlyStopping state across a resume, LR names for several optimizers."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
    TQDMProgressBar,
)
from lightning_kernel.trainer.loggers import CSVLogger
from scripted import ScriptedModel


@pytest.mark.parametrize("bar_kind", ["tqdm", "rich"])
def test_bars_through_validate_test_and_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bar_kind: str
) -> None:
    buffer = io.StringIO()
    bar: Any = (
        TQDMProgressBar()
        if bar_kind == "tqdm"
        else RichProgressBar(console_kwargs={"file": buffer, "force_terminal": False, "width": 120})
    )
    trainer = quiet_trainer(tmp_path, callbacks=[bar], enable_progress_bar=True, max_epochs=1)
    model = BoringModel(batches=3)
    trainer.fit(model)
    assert trainer.validate(model)[0]["val_loss"] >= 0
    assert trainer.test(model)[0]["test_loss"] >= 0
    predictions = trainer.predict(model)
    assert predictions is not None and len(predictions) == 3
    out = capsys.readouterr().out + buffer.getvalue()
    for word in ("Epoch 0", "Validation", "Testing", "Predicting"):
        assert word in out, word


def test_train_time_interval_saves_as_time_passes(tmp_path: Path) -> None:
    callback = ModelCheckpoint(
        dirpath=tmp_path / "ck",
        train_time_interval=timedelta(microseconds=1),
        save_top_k=-1,
        filename="{step}",
    )
    quiet_trainer(tmp_path, callbacks=[callback], enable_checkpointing=True, max_epochs=1).fit(
        BoringModel(batches=3)
    )
    assert sorted(os.listdir(tmp_path / "ck")) == ["step=1.ckpt", "step=2.ckpt", "step=3.ckpt"]


def test_saves_after_each_validation_when_validating_twice_per_epoch(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1, filename="{epoch}-{step}")
    trainer = quiet_trainer(
        tmp_path,
        callbacks=[callback],
        enable_checkpointing=True,
        max_epochs=2,
        val_check_interval=0.5,
        num_sanity_val_steps=0,
    )
    trainer.fit(BoringModel(batches=4))
    assert sorted(os.listdir(tmp_path / "ck")) == [
        "epoch=0-step=2.ckpt",
        "epoch=0-step=4.ckpt",
        "epoch=1-step=6.ckpt",
        "epoch=1-step=8.ckpt",
    ]


def test_early_stopping_state_survives_a_resume(tmp_path: Path) -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    def run(max_epochs: int, ckpt_path: str | None) -> tuple[EarlyStopping, Any]:
        stopping = EarlyStopping(monitor="val_score", patience=3)
        saving = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, filename="{epoch}")
        trainer = quiet_trainer(
            tmp_path,
            callbacks=[stopping, saving],
            enable_checkpointing=True,
            max_epochs=max_epochs,
            num_sanity_val_steps=0,
        )
        trainer.fit(ScriptedModel(values), ckpt_path=ckpt_path)
        return stopping, trainer

    first, _ = run(2, None)
    assert first.wait_count == 1
    with pytest.warns(UserWarning, match="not empty"):
        resumed, trainer = run(6, str(tmp_path / "ck" / "last.ckpt"))
    # epochs 1, 2, 3 did not improve on epoch 0: only a restored wait_count stops at epoch 3
    assert resumed.stopped_epoch == 3
    assert trainer.current_epoch == 4


def test_lr_names_for_two_optimizers_of_one_type(tmp_path: Path) -> None:
    class TwoOptimizers(BoringModel):
        def __init__(self) -> None:
            super().__init__(batches=2)
            self.automatic_optimization = False
            self.other = torch.nn.Linear(32, 2)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            for optimizer in self.optimizers():
                optimizer.zero_grad()
            loss = self.step(batch) + self.other(batch).sum() * 0.0
            self.manual_backward(loss)
            for optimizer in self.optimizers():
                optimizer.step()
            return loss

        def configure_optimizers(self) -> Any:
            return [
                torch.optim.SGD(self.layer.parameters(), lr=0.1),
                torch.optim.SGD(self.other.parameters(), lr=0.2),
            ]

    monitor = LearningRateMonitor()
    quiet_trainer(tmp_path, callbacks=[monitor], logger=CSVLogger(tmp_path), max_epochs=1).fit(
        TwoOptimizers()
    )
    assert monitor.lrs == {"lr-SGD": [0.1], "lr-SGD-1": [0.2]}
