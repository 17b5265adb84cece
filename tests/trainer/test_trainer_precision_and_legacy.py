"""Precision on CPU, the seed's older spellings (deprecated) and TPU arguments (refused)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from torch.utils.data import DataLoader


def test_bf16_mixed_autocasts_on_cpu(tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []

    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            out = self(batch)
            dtypes.append(out.dtype)
            return self.loss(out.float())

    model = Model()
    trainer = quiet_trainer(tmp_path, precision="bf16-mixed", limit_val_batches=0)
    trainer.fit(model)
    assert dtypes == [torch.bfloat16] * 4
    assert model.layer.weight.dtype == torch.float32  # parameters stay full precision
    assert trainer.precision == "bf16-mixed"


def test_true_precision_converts_parameters_and_inputs(tmp_path: Path) -> None:
    seen: list[torch.dtype] = []

    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            seen.append(batch.dtype)
            return super().training_step(batch, batch_idx)

    model = Model()
    quiet_trainer(tmp_path, precision="64-true", limit_val_batches=0).fit(model)
    assert model.layer.weight.dtype == torch.float64 and set(seen) == {torch.float64}


def test_precision_aliases_and_refusals(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="'bf16-mixed' instead"):
        assert quiet_trainer(tmp_path, precision="bf16").precision == "bf16-mixed"
    assert quiet_trainer(tmp_path, precision=32).precision == "32-true"
    with (
        pytest.raises(MisconfigurationException, match=r"needs a GPU.*bf16-mixed"),
        pytest.warns(UserWarning),
    ):
        quiet_trainer(tmp_path, precision=16)


def test_trainer_gpus_is_deprecated(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="accelerator='gpu', devices=0"):
        trainer = quiet_trainer(tmp_path, gpus=0)
    assert trainer.accelerator == "cpu"
    if not torch.cuda.is_available():
        with (
            pytest.warns(DeprecationWarning, match="Trainer\\(gpus=1\\)"),
            pytest.raises(MisconfigurationException, match="no CUDA GPU"),
        ):
            quiet_trainer(tmp_path, gpus=1)


@pytest.mark.parametrize(
    ("kwargs", "attr", "value"),
    [
        ({"num_processes": 1}, "accelerator", "cpu"),
        ({"checkpoint_callback": False}, "enable_checkpointing", False),
        ({"progress_bar_refresh_rate": 0}, "enable_progress_bar", False),
        ({"weights_summary": None}, "enable_model_summary", False),
    ],
)
def test_older_trainer_arguments_map_to_new_ones(
    tmp_path: Path, kwargs: dict[str, Any], attr: str, value: Any
) -> None:
    with pytest.warns(DeprecationWarning, match="deprecated"):
        trainer = quiet_trainer(tmp_path, **kwargs)
    assert getattr(trainer, attr) == value


@pytest.mark.parametrize("kwargs", [{"tpu_cores": 8}, {"ipus": 1}, {"accelerator": "tpu"}])
def test_tpu_arguments_are_refused_clearly(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(MisconfigurationException, match=r"not supported by lightning_kernel.trainer"):
        quiet_trainer(tmp_path, **kwargs)


def test_unknown_arguments_are_type_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*'max_epoch'"):
        quiet_trainer(tmp_path, max_epoch=3)


class SeedStyle(BoringModel):
    """The seed's quick start: dicts with 'log'/'progress_bar', and validation_epoch_end(outputs)."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.step(batch)
        return {
            "loss": loss,
            "log": {"train_loss": loss},
            "progress_bar": {"train_loss": loss, "bar_only": loss},
        }

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        return {"val_loss": self.step(batch)}

    def validation_epoch_end(self, outputs: list[dict[str, Any]]) -> Any:
        avg = torch.stack([x["val_loss"] for x in outputs]).mean()
        return {"val_loss": avg, "log": {"avg_val_loss": avg}}


def test_seed_style_logging_dicts_still_work_with_a_warning(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    with pytest.warns(DeprecationWarning) as record:
        trainer.fit(SeedStyle())
    messages = " ".join(str(w.message) for w in record)
    assert "'log'" in messages and "validation_epoch_end" in messages
    metrics = trainer.callback_metrics
    assert {"train_loss", "bar_only", "avg_val_loss", "val_loss"} <= set(metrics)
    assert set(trainer.progress_bar_metrics) == {"train_loss", "bar_only"}
    assert float(metrics["avg_val_loss"]) == pytest.approx(float(metrics["val_loss"]))


def test_seed_style_test_dataloaders_keyword(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path)
    with pytest.warns(DeprecationWarning, match="test_dataloaders"):
        result = trainer.test(
            BoringModel(), test_dataloaders=DataLoader(RandomDataset(32, 4), batch_size=2), verbose=False
        )
    assert set(result[0]) == {"test_loss"}


def test_no_deprecation_warnings_for_current_spellings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        quiet_trainer(tmp_path, accelerator="cpu", devices=1, precision="32-true").fit(BoringModel())
