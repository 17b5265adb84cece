"""Loggers driven by the real Trainer: what a fit writes, and the default logger's folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import yaml
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


class LoggingModel(BoringModel):
    def __init__(self, lr: float = 0.1, batches: int = 4) -> None:
        super().__init__(batches=batches, lr=lr)
        self.save_hyperparameters()

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss


def test_csv_logger_gets_step_and_epoch_metrics_and_hparams(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    trainer = quiet_trainer(tmp_path, logger=logger, max_epochs=2, log_every_n_steps=2)
    trainer.fit(LoggingModel(lr=0.05, batches=4))
    with open(os.path.join(logger.log_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    step_rows = [r for r in rows if r.get("train_loss_step")]
    assert [int(r["step"]) for r in step_rows] == [1, 3, 5, 7]
    epoch_rows = [r for r in rows if r.get("train_loss_epoch")]
    assert [int(r["epoch"]) for r in epoch_rows] == [0, 1]
    assert [r for r in rows if r.get("val_loss")], "validation metrics are logged too"
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as f:
        assert yaml.safe_load(f) == {"lr": 0.05, "batches": 4}
    assert trainer.log_dir == logger.log_dir
    assert trainer.logger is logger


def test_default_logger_is_tensorboard_under_default_root_dir(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, logger=True, max_epochs=1, log_every_n_steps=1)
    trainer.fit(LoggingModel(batches=3))
    assert isinstance(trainer.logger, TensorBoardLogger)
    log_dir = tmp_path / "lightning_logs" / "version_0"
    assert trainer.log_dir == str(log_dir)
    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    assert "train_loss_step" in accumulator.Tags()["scalars"]
    assert [e.step for e in accumulator.Scalars("train_loss_step")] == [0, 1, 2]
    assert (log_dir / "hparams.yaml").exists()
    # a second run takes the next version
    second = quiet_trainer(tmp_path, logger=True, max_epochs=1)
    second.fit(LoggingModel(batches=1))
    assert second.log_dir == str(tmp_path / "lightning_logs" / "version_1")


def test_several_loggers_all_receive_metrics(tmp_path: Path) -> None:
    csv_logger = CSVLogger(tmp_path, name="csv")
    tb_logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = quiet_trainer(tmp_path, logger=[csv_logger, tb_logger], max_epochs=1, log_every_n_steps=1)
    trainer.fit(LoggingModel(batches=2))
    assert trainer.loggers == [csv_logger, tb_logger]
    assert os.path.exists(os.path.join(csv_logger.log_dir, "metrics.csv"))
    accumulator = EventAccumulator(tb_logger.log_dir)
    accumulator.Reload()
    assert "train_loss_epoch" in accumulator.Tags()["scalars"]


def test_tensorboard_graph_from_example_input(tmp_path: Path) -> None:
    import torch

    model = LoggingModel(batches=1)
    model.example_input_array = torch.zeros(2, 32)
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    quiet_trainer(tmp_path, logger=logger, max_epochs=1).fit(model)
    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    assert accumulator.Tags()["graph"] is True
