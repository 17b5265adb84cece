"""The callbacks PL 2.6 offers that came with issue 8: prediction writers, finetuning, the tuner's
callbacks, Timer, LambdaCallback, the accumulation scheduler, OnExceptionCheckpoint, RichModelSummary."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.callbacks import (
    BackboneFinetuning,
    BasePredictionWriter,
    BatchSizeFinder,
    GradientAccumulationScheduler,
    LambdaCallback,
    LearningRateFinder,
    OnExceptionCheckpoint,
    RichModelSummary,
    Timer,
)
from torch import nn


class Writer(BasePredictionWriter):
    def __init__(self, interval: str) -> None:
        super().__init__(interval)
        self.batches: list[tuple[list[int], int]] = []
        self.epoch: tuple[Any, Any] | None = None

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        self.batches.append((list(batch_indices), batch_idx))

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        self.epoch = (predictions, batch_indices)


def test_prediction_writer_gets_each_batchs_sample_indices(tmp_path: Path) -> None:
    writer = Writer("batch_and_epoch")
    predictions = quiet_trainer(tmp_path, callbacks=[writer]).predict(BoringModel(batches=3))
    assert writer.batches == [([0, 1], 0), ([2, 3], 1), ([4, 5], 2)]
    assert writer.epoch is not None
    written, indices = writer.epoch
    assert len(written) == 3 and torch.equal(written[0], predictions[0])
    assert indices == [[[0, 1], [2, 3], [4, 5]]]  # per dataloader, as PL hands them over
    with pytest.raises(MisconfigurationException, match="`write_interval` should be one of"):
        Writer("sometimes")


class WithBackbone(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.backbone(x))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.layer.parameters(), lr=0.1)


def test_backbone_finetuning_unfreezes_on_schedule_and_resumes_its_groups(tmp_path: Path) -> None:
    callback = BackboneFinetuning(unfreeze_backbone_at_epoch=1, backbone_initial_lr=0.01)
    model = WithBackbone()
    frozen_at_start: list[bool] = []

    class Peek(LambdaCallback):
        pass

    peek = Peek(on_train_start=lambda trainer, m: frozen_at_start.append(m.backbone[0].weight.requires_grad))
    ckpt = tmp_path / "two.ckpt"
    trainer = quiet_trainer(tmp_path, callbacks=[callback, peek], max_epochs=2, limit_val_batches=0)
    trainer.fit(model)
    trainer.save_checkpoint(ckpt)
    assert frozen_at_start == [False]
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.01)
    assert model.backbone[0].weight.requires_grad
    # a resumed run rebuilds the added group before the optimizer state is loaded into it
    again = quiet_trainer(
        tmp_path,
        callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=1)],
        max_epochs=3,
        limit_val_batches=0,
    )
    again.fit(WithBackbone(), ckpt_path=str(ckpt))
    assert len(again.optimizers[0].param_groups) == 2 and again.global_step == 12
    with pytest.raises(MisconfigurationException, match=r"should have a nn\.Module `backbone` attribute"):
        quiet_trainer(tmp_path, callbacks=[BackboneFinetuning()]).fit(BoringModel())


def test_lr_finder_callback_sets_the_rate_the_run_trains_with(tmp_path: Path) -> None:
    model = BoringModel(batches=20)
    finder = LearningRateFinder(num_training_steps=15)
    trainer = quiet_trainer(tmp_path, callbacks=[finder], limit_val_batches=0)
    trainer.fit(model)
    suggestion = finder.optimal_lr.suggestion()
    assert suggestion is not None and model.lr == suggestion
    assert trainer.optimizers[0].param_groups[0]["lr"] == suggestion
    assert trainer.global_step == 20  # the run itself, from the module's own first weights


def test_batch_size_finder_callback_trains_with_the_size_found(tmp_path: Path) -> None:
    model = BoringModel(batches=32, batch_size=2)
    finder = BatchSizeFinder(max_trials=3, steps_per_trial=1)
    trainer = quiet_trainer(tmp_path, callbacks=[finder], limit_val_batches=0)
    trainer.fit(model)
    assert finder.optimal_batch_size == 8 and model.batch_size == 8
    # the module's loader holds `batches` batches of whatever size it is given
    assert trainer.train_dataloader.batch_size == 8 and trainer.global_step == 32


def test_timer_stops_training_and_counts_resumed_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timer = Timer(duration={"seconds": 0}, interval="step")
    trainer = quiet_trainer(tmp_path, callbacks=[timer], max_epochs=5, limit_val_batches=0)
    with caplog.at_level(logging.INFO):
        trainer.fit(BoringModel())
    assert trainer.global_step == 1 and "Time limit reached." in caplog.text
    assert timer.time_elapsed("train") > 0 and timer.time_remaining() is not None
    assert timer.start_time("validate") is None
    state = timer.state_dict()
    later = Timer(duration="00:00:00:00")
    later.load_state_dict(state)
    assert later.time_elapsed() == pytest.approx(state["time_elapsed"]["train"])
    with pytest.raises(
        MisconfigurationException, match=re.escape("Unsupported parameter value `Timer(interval=hour)`")
    ):
        Timer(interval="hour")


def test_lambda_callback_runs_plain_functions(tmp_path: Path) -> None:
    calls: list[str] = []
    callback = LambdaCallback(
        on_fit_start=lambda t, m: calls.append("fit"), on_train_epoch_end=lambda t, m: calls.append("epoch")
    )
    quiet_trainer(tmp_path, callbacks=[callback], max_epochs=2, limit_val_batches=0).fit(BoringModel())
    assert calls == ["fit", "epoch", "epoch"]
    with pytest.raises(TypeError, match="not Callback hooks"):
        LambdaCallback(on_something=print)


def test_gradient_accumulation_scheduler_changes_the_factor_by_epoch(tmp_path: Path) -> None:
    factors: list[int] = []
    peek = LambdaCallback(on_train_epoch_start=lambda t, m: factors.append(t.accumulate_grad_batches))
    scheduler = GradientAccumulationScheduler({1: 2, 2: 4})
    trainer = quiet_trainer(tmp_path, callbacks=[scheduler, peek], max_epochs=3, limit_val_batches=0)
    trainer.fit(BoringModel())
    assert factors == [1, 2, 4]
    assert trainer.global_step == 4 + 2 + 1
    with pytest.raises(
        MisconfigurationException, match="Accumulation factor should be an int greater than 0"
    ):
        GradientAccumulationScheduler({0: 0})


def test_on_exception_checkpoint_is_written_then_resumed_from(tmp_path: Path) -> None:
    class Fails(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.trainer.global_step == 5:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    callback = OnExceptionCheckpoint(tmp_path / "crash")
    with pytest.raises(RuntimeError):
        quiet_trainer(tmp_path, callbacks=[callback], max_epochs=2, enable_checkpointing=True).fit(Fails())
    assert os.path.isfile(callback.ckpt_path)
    trainer = quiet_trainer(
        tmp_path,
        callbacks=[OnExceptionCheckpoint(tmp_path / "crash")],
        max_epochs=2,
        enable_checkpointing=True,
    )
    with pytest.warns(UserWarning, match="The last model of the previous `fit` call will be used"):
        trainer.fit(BoringModel())
    assert trainer.ckpt_path == callback.ckpt_path and trainer.global_step == 8
    assert not os.path.exists(callback.ckpt_path)  # a run that ended well removes it


def test_rich_model_summary_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quiet_trainer(tmp_path, callbacks=[RichModelSummary()], limit_val_batches=0).fit(BoringModel(batches=1))
    out = capsys.readouterr().out
    assert "Linear" in out and "Trainable params: 66" in out
