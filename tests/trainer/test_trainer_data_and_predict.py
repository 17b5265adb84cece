"""Datamodules, dataloader sources, batch hooks, several train loaders, and predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringDataModule, BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from torch.utils.data import DataLoader


class RecordingDataModule(BoringDataModule):
    def __init__(self, batches: int = 3) -> None:
        super().__init__(batches=batches)
        self.save_hyperparameters()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")

    def teardown(self, stage: str) -> None:
        self.calls.append(f"teardown:{stage}")

    def state_dict(self) -> dict[str, Any]:
        return {"seen": len(self.calls)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.calls.append(f"load:{state_dict['seen']}")


def test_datamodule_drives_fit_validate_test_and_checkpoints(tmp_path: Path) -> None:
    dm = RecordingDataModule()
    model = BoringModel(batches=10)  # the datamodule's 3 batches win over the module's 10
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    assert trainer.num_training_batches == 3 and trainer.datamodule is dm and dm.trainer is trainer
    assert dm.calls == ["prepare_data", "setup:fit", "teardown:fit"]
    trainer.test(model, datamodule=dm, verbose=False)
    assert trainer.num_test_batches == [3]
    trainer.save_checkpoint(tmp_path / "dm.ckpt")
    checkpoint = pl.load_checkpoint(str(tmp_path / "dm.ckpt"))
    assert checkpoint["datamodule_hyper_parameters"] == {"batches": 3}
    assert checkpoint["RecordingDataModule"] == {"seen": 6}
    restored = RecordingDataModule.load_from_checkpoint(str(tmp_path / "dm.ckpt"))
    assert restored.calls == ["load:6"]
    dm2 = RecordingDataModule()
    quiet_trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0).fit(
        BoringModel(), datamodule=dm2, ckpt_path=str(tmp_path / "dm.ckpt")
    )
    assert "load:6" in dm2.calls


def test_datamodule_from_datasets_and_fit_shorthand(tmp_path: Path) -> None:
    dm = pl.LightningDataModule.from_datasets(RandomDataset(32, 8), RandomDataset(32, 4), batch_size=2)
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(BoringModel(), dm)  # a datamodule in the dataloaders position, as PL allows
    assert trainer.num_training_batches == 4 and trainer.num_val_batches == [2]


def test_explicit_dataloaders_win(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(
        BoringModel(batches=10),
        DataLoader(RandomDataset(32, 6), batch_size=2),
        DataLoader(RandomDataset(32, 2), batch_size=2),
    )
    assert trainer.num_training_batches == 3 and trainer.num_val_batches == [1]
    with pytest.raises(
        MisconfigurationException, match="cannot pass `train_dataloader` or `val_dataloaders`"
    ):
        trainer.fit(BoringModel(), DataLoader(RandomDataset(32, 6)), datamodule=BoringDataModule())


def test_missing_train_data_says_where_to_put_it(tmp_path: Path) -> None:
    class NoData(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(32, 2)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return self.layer(batch).sum()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with pytest.raises(
        MisconfigurationException, match=r"No `train_dataloader\(\)` method defined.*train_dataloaders"
    ):
        quiet_trainer(tmp_path).fit(NoData())
    with pytest.raises(
        MisconfigurationException, match=r"No `test_step\(\)` method defined to run `Trainer.test`"
    ):
        quiet_trainer(tmp_path).test(NoData(), DataLoader(RandomDataset(32, 2)))
    with pytest.raises(MisconfigurationException, match="which cannot be iterated"):
        quiet_trainer(tmp_path).fit(NoData(), train_dataloaders=42)
    with pytest.raises(TypeError, match="requires a `LightningModule`, got: Linear"):
        quiet_trainer(tmp_path).fit(torch.nn.Linear(1, 1))  # type: ignore[arg-type]


def test_batch_transfer_hooks_and_datamodule_precedence(tmp_path: Path) -> None:
    seen: list[str] = []

    class Model(BoringModel):
        def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            seen.append("module.before")
            return batch * 0 + 1

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            assert torch.all(batch == 2)
            return super().training_step(batch, batch_idx)

    class DataModule(BoringDataModule):
        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            seen.append("dm.after")
            return batch + 1

    quiet_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(Model(), datamodule=DataModule())
    assert seen == ["module.before", "dm.after"]


def test_several_train_loaders_cycle_the_shorter(tmp_path: Path) -> None:
    shapes: list[tuple[int, int]] = []

    class Two(BoringModel):
        def train_dataloader(self) -> Any:
            return {
                "a": DataLoader(RandomDataset(32, 8), batch_size=2),
                "b": DataLoader(RandomDataset(32, 4), batch_size=4),
            }

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            shapes.append((batch["a"].shape[0], batch["b"].shape[0]))
            return self.step(torch.cat([batch["a"], batch["b"]]))

    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Two())
    assert shapes == [(2, 4)] * 4 and trainer.num_training_batches == 4


def test_predict_returns_cpu_predictions_per_dataloader(tmp_path: Path) -> None:
    model = BoringModel(batches=3)
    trainer = quiet_trainer(tmp_path)
    predictions = trainer.predict(model)
    assert len(predictions) == 3 and predictions[0].shape == (2, 2)
    two = trainer.predict(
        model, [DataLoader(RandomDataset(32, 4), batch_size=2), DataLoader(RandomDataset(32, 2))]
    )
    assert [len(p) for p in two] == [2, 2]
    assert trainer.predict(model, return_predictions=False) is None

    class WithIdx(BoringModel):
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            return (batch_idx, dataloader_idx)

    assert trainer.predict(WithIdx(batches=2)) == [(0, 0), (1, 0)]


def test_evaluation_restores_each_submodule_mode(tmp_path: Path) -> None:
    class Frozen(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.frozen = torch.nn.Dropout(0.5)
            self.frozen.eval()
            self.modes: list[bool] = []

        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            self.modes.append(self.training)
            return super().validation_step(batch, batch_idx)

    model = Frozen()
    quiet_trainer(tmp_path, num_sanity_val_steps=1).fit(model)
    assert set(model.modes) == {False}
    assert model.training and not model.frozen.training


def test_validate_after_fit_uses_the_best_checkpoint_when_no_model_is_given(tmp_path: Path) -> None:
    from lightning_kernel.trainer.callbacks import ModelCheckpoint

    callback = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss")
    trainer = quiet_trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[callback])
    trainer.fit(BoringModel())
    trainer.validate(verbose=False)
    assert trainer.ckpt_path == callback.best_model_path
