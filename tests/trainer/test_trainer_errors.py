"""A training_step that returns nothing usable, and what happens when a run fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.errors import ConfigError, KernelError
from lightning_kernel.trainer import MisconfigurationException


def _returning(value: Any) -> BoringModel:
    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return value(self, batch) if callable(value) else value

    return Model()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "a string",
            "must return a Tensor \\(the loss\\), a dict with a 'loss' key, or None.*returned a str",
        ),
        (lambda self, batch: {"logits": self(batch)}, "the 'loss' key needs to be present.*\\['logits'\\]"),
        (lambda self, batch: self.step(batch).detach(), "does not require grad.*without .detach\\(\\)"),
        (lambda self, batch: self(batch), "loss of shape \\(2, 2\\); reduce it to one number"),
        (lambda self, batch: {"loss": 3.0}, "its 'loss' is a float, not a Tensor"),
    ],
)
def test_unusable_training_step_results(tmp_path: Path, value: Any, message: str) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        quiet_trainer(tmp_path).fit(_returning(value))


def test_training_step_returning_none_skips_the_step(tmp_path: Path) -> None:
    model = _returning(None)
    before = model.layer.weight.detach().clone()
    with pytest.warns(UserWarning, match="`training_step` returned `None`"):
        quiet_trainer(tmp_path, limit_val_batches=0).fit(model)
    assert torch.equal(before, model.layer.weight)


def test_missing_training_step(tmp_path: Path) -> None:
    class NoStep(pl.LightningModule):
        def configure_optimizers(self) -> Any:
            return None

        def train_dataloader(self) -> Any:
            return BoringModel().train_dataloader()

    with pytest.raises(MisconfigurationException, match="has no `training_step\\(\\)`"):
        quiet_trainer(tmp_path).fit(NoStep())


def test_errors_are_kernel_errors() -> None:
    assert issubclass(MisconfigurationException, ConfigError)
    assert issubclass(pl.CheckpointError, KernelError)


def test_a_failing_run_calls_on_exception_and_finalizes_loggers(tmp_path: Path) -> None:
    events: list[str] = []

    class Logger:
        name, version, save_dir, log_dir = "x", 0, None, None

        def log_metrics(self, metrics: Any, step: int) -> None:
            pass

        def log_hyperparams(self, params: Any) -> None:
            pass

        def save(self) -> None:
            pass

        def finalize(self, status: str) -> None:
            events.append(f"finalize:{status}")

    class Watch(pl.Callback):
        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            events.append(f"callback:{type(exception).__name__}")

    class Boom(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

        def on_exception(self, exception: BaseException) -> None:
            events.append("module")

    trainer = quiet_trainer(tmp_path, logger=Logger(), callbacks=[Watch()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Boom())
    assert events == ["callback:RuntimeError", "module", "finalize:failed"]
    assert trainer.interrupted and trainer.state.stage is None
