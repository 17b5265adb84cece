"""Tuner with the real Trainer: lr_find and scale_batch_size on BoringModel-style modules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringDataModule, BoringModel, quiet_trainer
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.tuner import Tuner


class OOMModel(BoringModel):
    """Raises CUDA's out-of-memory error for batches larger than ``limit`` (PL's tests do the same)."""

    def __init__(self, limit: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit
        self.seen: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self.seen.append(len(batch))
        if len(batch) > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return super().training_step(batch, batch_idx)


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_lr_find_sets_a_suggestion_and_restores_the_weights(tmp_path: Path) -> None:
    model = BoringModel(batches=8, lr=0.1)
    before = copy.deepcopy(model.state_dict())
    trainer = quiet_trainer(tmp_path, max_epochs=3)
    finder = Tuner(trainer).lr_find(model, num_training=30, early_stop_threshold=None)
    assert finder is not None
    assert len(finder.results["lr"]) == 30 and len(finder.results["loss"]) == 30
    assert finder.results["lr"][0] == pytest.approx(1e-8)
    assert finder.results["lr"][-1] == pytest.approx(1.0)
    suggestion = finder.suggestion()
    assert suggestion is not None and model.lr == suggestion
    assert _same_weights(before, model.state_dict())
    assert "configure_optimizers" not in vars(model)  # the trial's wrapper is gone
    trainer.fit(model)  # the user's Trainer is untouched and trains with the new lr
    assert trainer.current_epoch == 3


def test_lr_find_stops_when_the_loss_diverges(tmp_path: Path) -> None:
    class Diverging(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            # sane for 10 steps, then the loss explodes
            return {"loss": self.step(batch) * (1.0 if batch_idx < 10 else 1000.0)}

    finder = Tuner(quiet_trainer(tmp_path)).lr_find(Diverging(batches=50), num_training=40, update_attr=False)
    assert finder is not None
    assert len(finder.results["loss"]) == 11
    assert len(finder.results["lr"]) == 11


def test_lr_find_attribute_errors(tmp_path: Path) -> None:
    model = BoringModel()
    del model.lr
    with pytest.raises(AttributeError, match=r"\('lr', 'learning_rate'\)"):
        Tuner(quiet_trainer(tmp_path)).lr_find(model)
    with pytest.raises(MisconfigurationException, match="only valid configuration"):
        Tuner(quiet_trainer(tmp_path)).lr_find(BoringModel(), method="test")


def test_lr_find_with_two_optimizers_is_refused(tmp_path: Path) -> None:
    class TwoOptimizers(BoringModel):
        def configure_optimizers(self) -> Any:
            return [torch.optim.SGD(self.parameters(), lr=0.1), torch.optim.Adam(self.parameters())]

    with pytest.raises(MisconfigurationException, match="returned 2 optimizers"):
        Tuner(quiet_trainer(tmp_path)).lr_find(TwoOptimizers(), num_training=5)


@pytest.mark.parametrize(("mode", "expected"), [("power", 16), ("binsearch", 20)])
def test_scale_batch_size_stops_below_the_oom_limit(tmp_path: Path, mode: str, expected: int) -> None:
    model = OOMModel(limit=20, batches=64, batch_size=2)
    before = copy.deepcopy(model.state_dict())
    tuner = Tuner(quiet_trainer(tmp_path))
    found = tuner.scale_batch_size(model, mode=mode, steps_per_trial=1, margin=0.0)
    assert found == expected
    assert (32, False) in tuner.last_batch_size_trials and (16, True) in tuner.last_batch_size_trials
    assert model.batch_size == found
    assert 32 in model.seen  # the first size that did not fit was tried
    assert _same_weights(before, model.state_dict())


def test_scale_batch_size_on_a_datamodule(tmp_path: Path) -> None:
    datamodule = BoringDataModule(batches=64, batch_size=2)
    found = Tuner(quiet_trainer(tmp_path)).scale_batch_size(
        BoringModel(), datamodule=datamodule, max_trials=3, steps_per_trial=1
    )
    assert found == 8 and datamodule.batch_size == 8


def test_scale_batch_size_leaves_the_train_loader_at_the_size_found(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path)
    model = BoringModel(batches=64, batch_size=2)
    found = Tuner(trainer).scale_batch_size(model, max_trials=2, steps_per_trial=1)
    assert found == 4
    assert trainer.train_dataloader is not None and trainer.train_dataloader.batch_size == 4


def test_binsearch_takes_five_percent_off_by_default(tmp_path: Path) -> None:
    model = BoringModel(batches=64, batch_size=2)
    found = Tuner(quiet_trainer(tmp_path)).scale_batch_size(
        model, mode="binsearch", init_val=40, max_trials=1, steps_per_trial=1
    )
    assert found == 38 and model.batch_size == 38


def test_scale_batch_size_refuses_dataloaders_passed_directly(tmp_path: Path) -> None:
    model = BoringModel()
    with pytest.raises(MisconfigurationException, match="dataloaders passed directly"):
        Tuner(quiet_trainer(tmp_path)).scale_batch_size(model, train_dataloaders=model.train_dataloader())
    del model.batch_size
    with pytest.raises(AttributeError, match="Field batch_size not found"):
        Tuner(quiet_trainer(tmp_path)).scale_batch_size(model)


def test_fast_dev_run_skips_tuning(tmp_path: Path) -> None:
    tuner = Tuner(quiet_trainer(tmp_path, fast_dev_run=True))
    with pytest.warns(UserWarning, match="Skipping learning rate finder"):
        assert tuner.lr_find(BoringModel()) is None
    with pytest.warns(UserWarning, match="Skipping batch size scaler"):
        assert tuner.scale_batch_size(BoringModel()) is None


def test_scale_batch_size_for_validation(tmp_path: Path) -> None:
    class ValOOM(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            if len(batch) > 8:
                raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
            return super().validation_step(batch, batch_idx)

    model = ValOOM(batches=64)
    found = Tuner(quiet_trainer(tmp_path)).scale_batch_size(model, method="validate", steps_per_trial=1)
    assert found == 8 and model.batch_size == 8
    with pytest.raises(MisconfigurationException, match="`dataloaders` argument should be None"):
        Tuner(quiet_trainer(tmp_path)).scale_batch_size(model, dataloaders=model.val_dataloader())


def test_lr_find_updates_learning_rate_in_hparams(tmp_path: Path) -> None:
    class HparamsModel(BoringModel):
        def __init__(self, learning_rate: float = 0.1) -> None:
            super().__init__(batches=8)
            del self.lr
            self.save_hyperparameters()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)

    model = HparamsModel()
    finder = Tuner(quiet_trainer(tmp_path)).lr_find(model, num_training=20, early_stop_threshold=None)
    assert finder is not None and finder.suggestion() is not None
    assert model.hparams.learning_rate == finder.suggestion()
    assert model.hparams.learning_rate != 0.1
