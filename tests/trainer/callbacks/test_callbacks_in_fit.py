"""EarlyStopping, LearningRateMonitor, ModelSummary and the progress bars driven by the real Trainer."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.callbacks import (
    EarlyStopping,
    EarlyStoppingReason,
    LearningRateMonitor,
    ModelSummary,
    RichProgressBar,
    TQDMProgressBar,
)
from lightning_kernel.trainer.loggers import CSVLogger
from scripted import ScriptedModel


def _csv(logger: CSVLogger) -> list[dict[str, str]]:
    with open(os.path.join(logger.log_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


# -- EarlyStopping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "patience", "stopped"),
    [
        ([1.0, 0.9, 0.95, 0.97, 0.8, 0.7, 0.6, 0.5], 2, 3),
        ([1.0, 0.9, 0.95, 0.97, 0.8, 0.7, 0.6, 0.5], 3, None),  # 0.8 at epoch 4 resets the count
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 1, 1),
    ],
)
def test_stops_at_the_scripted_epoch(
    tmp_path: Path, values: list[float], patience: int, stopped: int | None
) -> None:
    callback = EarlyStopping(monitor="val_score", patience=patience)
    trainer = quiet_trainer(tmp_path, callbacks=[callback], max_epochs=len(values), num_sanity_val_steps=0)
    trainer.fit(ScriptedModel(values))
    assert callback.stopped_epoch == (stopped or 0)
    # the epoch counter moves past the epoch that asked to stop, as in PL
    assert trainer.current_epoch == (len(values) if stopped is None else stopped + 1)
    assert trainer.should_stop == (stopped is not None)
    assert trainer.early_stopping_callback is callback


def test_stops_on_a_training_metric_and_reports_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callback = EarlyStopping(monitor="train_score", patience=1, verbose=True)
    model = ScriptedModel([3.0, 2.0, 2.5, 1.0], key="train_score", on_train=True)
    trainer = quiet_trainer(tmp_path, callbacks=[callback], max_epochs=4, limit_val_batches=0)
    trainer.fit(model)
    assert callback.stopped_epoch == 2
    assert trainer.current_epoch == 3
    assert callback.stopping_reason_message is not None
    assert "did not improve in the last 1 records" in callback.stopping_reason_message
    assert callback.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert any(
        r.name == "lightning_kernel.trainer.callbacks.early_stopping" and "did not improve" in r.message
        for r in caplog.records
    )


def test_checks_after_validation_when_it_runs_every_other_epoch(tmp_path: Path) -> None:
    callback = EarlyStopping(monitor="val_score", patience=1)
    trainer = quiet_trainer(
        tmp_path, callbacks=[callback], max_epochs=10, check_val_every_n_epoch=2, num_sanity_val_steps=0
    )
    # validation runs after epochs 1, 3, 5: 0.5, 0.6 (worse: stop)
    trainer.fit(ScriptedModel([9.0, 0.5, 9.0, 0.6, 9.0, 0.1, 9.0, 9.0, 9.0, 9.0]))
    assert callback.stopped_epoch == 3
    assert trainer.current_epoch == 4


def test_missing_monitor_fails_when_strict(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, callbacks=[EarlyStopping(monitor="nope")], max_epochs=2)
    with pytest.raises(RuntimeError, match=r"`nope` which is not available.*`val_loss`"):
        trainer.fit(BoringModel(batches=2))
    relaxed = EarlyStopping(monitor="nope", strict=False)
    trainer = quiet_trainer(tmp_path, callbacks=[relaxed], max_epochs=2)
    trainer.fit(BoringModel(batches=2))
    assert trainer.current_epoch == 2 and relaxed.stopped_epoch == 0


def test_stopping_threshold_in_fit(tmp_path: Path) -> None:
    callback = EarlyStopping(monitor="val_score", stopping_threshold=0.25, patience=100)
    trainer = quiet_trainer(tmp_path, callbacks=[callback], max_epochs=6, num_sanity_val_steps=0)
    trainer.fit(ScriptedModel([1.0, 0.5, 0.2, 0.1, 0.05, 0.01]))
    assert callback.stopped_epoch == 2
    assert trainer.current_epoch == 3


# -- LearningRateMonitor ------------------------------------------------------------------------------------


class SchedulerModel(BoringModel):
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


class TwoGroupAdamModel(BoringModel):
    def configure_optimizers(self) -> Any:
        groups = [{"params": [self.layer.weight], "lr": 0.01}, {"params": [self.layer.bias], "lr": 0.02}]
        optimizer = torch.optim.Adam(groups)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def test_epoch_scheduler_is_logged_each_epoch(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    monitor = LearningRateMonitor(log_momentum=True)
    trainer = quiet_trainer(tmp_path, callbacks=[monitor], logger=logger, max_epochs=3)
    trainer.fit(SchedulerModel(batches=2))
    assert monitor.lrs == {"lr-SGD": pytest.approx([0.1, 0.05, 0.025])}
    rows = [r for r in _csv(logger) if r.get("lr-SGD")]
    assert [float(r["lr-SGD"]) for r in rows] == pytest.approx([0.1, 0.05, 0.025])
    assert all(float(r["lr-SGD-momentum"]) == pytest.approx(0.9) for r in rows)
    assert float(trainer.callback_metrics["lr-SGD"]) == pytest.approx(0.025)


def test_param_groups_and_step_interval(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    monitor = LearningRateMonitor(logging_interval="step")
    trainer = quiet_trainer(tmp_path, callbacks=[monitor], logger=logger, max_epochs=1, log_every_n_steps=1)
    trainer.fit(TwoGroupAdamModel(batches=3))
    assert set(monitor.lrs) == {"lr-Adam/pg1", "lr-Adam/pg2"}
    assert monitor.lrs["lr-Adam/pg1"] == pytest.approx([0.01, 0.005, 0.0025])
    assert monitor.lrs["lr-Adam/pg2"] == pytest.approx([0.02, 0.01, 0.005])
    rows = [r for r in _csv(logger) if r.get("lr-Adam/pg1")]
    assert [int(r["step"]) for r in rows] == [0, 1, 2]


def test_optimizer_without_scheduler_and_a_named_scheduler(tmp_path: Path) -> None:
    class Named(BoringModel):
        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.3)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "name": "my_lr"}}

    plain = LearningRateMonitor()
    quiet_trainer(tmp_path, callbacks=[plain], logger=CSVLogger(tmp_path), max_epochs=1).fit(
        BoringModel(batches=2)
    )
    assert list(plain.lrs) == ["lr-SGD"]
    named = LearningRateMonitor()
    quiet_trainer(tmp_path, callbacks=[named], logger=CSVLogger(tmp_path), max_epochs=1).fit(Named(batches=2))
    assert list(named.lrs) == ["my_lr"]


def test_lr_monitor_needs_a_logger(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, callbacks=[LearningRateMonitor()], max_epochs=1)
    with pytest.raises(MisconfigurationException, match="no logger"):
        trainer.fit(BoringModel(batches=2))


# -- ModelSummary -------------------------------------------------------------------------------------------


def test_summary_is_logged_when_fit_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet_trainer(tmp_path, callbacks=[ModelSummary(max_depth=1)], max_epochs=1).fit(BoringModel(batches=1))
    out = "\n".join(
        r.message for r in caplog.records if r.name == "lightning_kernel.trainer.callbacks.model_summary"
    )
    assert "0 | layer | Linear | 66     | train" in out
    assert "66        Total params" in out


def test_default_summary_follows_enable_model_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_trainer(tmp_path, enable_model_summary=True, max_epochs=1).fit(BoringModel(batches=1))
    assert "Trainable params" in caplog.text
    caplog.clear()
    quiet_trainer(tmp_path, max_epochs=1).fit(BoringModel(batches=1))
    assert "Trainable params" not in caplog.text


# -- progress bars ------------------------------------------------------------------------------------------


class ProgBarModel(BoringModel):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss


def test_tqdm_bar_shows_epochs_and_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bar = TQDMProgressBar()
    trainer = quiet_trainer(tmp_path, callbacks=[bar], enable_progress_bar=True, max_epochs=2)
    trainer.fit(ProgBarModel(batches=3))
    out = capsys.readouterr().out
    assert "Epoch 0" in out and "Epoch 1" in out
    assert "3/3" in out
    assert "train_loss=" in out
    assert trainer.progress_bar_callback is bar


def test_default_bar_is_tqdm(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, enable_progress_bar=True, max_epochs=1)
    assert isinstance(trainer.progress_bar_callback, TQDMProgressBar)


def test_bar_reads_metrics_only_when_it_redraws(tmp_path: Path) -> None:
    class CountingBar(TQDMProgressBar):
        reads = 0

        def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
            CountingBar.reads += 1
            return super().get_metrics(trainer, pl_module)

    trainer = quiet_trainer(tmp_path, callbacks=[CountingBar()], enable_progress_bar=True, max_epochs=1)
    trainer.fit(ProgBarModel(batches=300, batch_size=1))
    # refresh_rate=1 would read (and sync) every step; the time throttle leaves a handful
    assert 1 <= CountingBar.reads < 30


def test_rich_bar_renders_to_its_console(tmp_path: Path) -> None:
    buffer = io.StringIO()
    bar = RichProgressBar(console_kwargs={"file": buffer, "force_terminal": False, "width": 150})
    trainer = quiet_trainer(tmp_path, callbacks=[bar], enable_progress_bar=True, max_epochs=2)
    trainer.fit(ProgBarModel(batches=3))
    out = buffer.getvalue()
    assert "Epoch 1" in out
    assert "3/3" in out
    assert "train_loss:" in out


def test_disabled_bar_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bar = TQDMProgressBar(refresh_rate=0)
    quiet_trainer(tmp_path, callbacks=[bar], enable_progress_bar=True, max_epochs=1).fit(
        ProgBarModel(batches=2)
    )
    assert "Epoch" not in capsys.readouterr().out
