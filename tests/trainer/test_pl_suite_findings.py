"""Behaviours where PyTorch Lightning's own test suite, run against this Trainer, found a difference
that a user would hit; each test here is ours, in PL's style."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringDataModule, BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer.profilers import PassThroughProfiler, SimpleProfiler
from torch.utils.data import IterableDataset

RANK_ZERO = "lightning_kernel.trainer.utilities.rank_zero"

# -- barebones -----------------------------------------------------------------------------------------------


def test_barebones_turns_everything_off_and_says_so(caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger=RANK_ZERO):
        trainer = pl.Trainer(barebones=True)
    assert "You are running in `Trainer(barebones=True)` mode." in caplog.text
    assert " - Profiling: `Trainer(profiler=...)`" in caplog.text
    assert (
        trainer.loggers == [] and trainer.checkpoint_callbacks == [] and trainer.progress_bar_callback is None
    )
    assert trainer.log_every_n_steps == 0 and trainer.num_sanity_val_steps == 0
    assert isinstance(trainer.profiler, PassThroughProfiler)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("enable_checkpointing", True, "Checkpointing can impact raw speed"),
        ("logger", True, "Logging can impact raw speed"),
        ("enable_progress_bar", True, "The progress bar can impact raw speed"),
        ("enable_model_summary", True, "Model summary can impact raw speed"),
        ("log_every_n_steps", 1, "Logging can impact raw speed"),
        ("num_sanity_val_steps", 1, "Sanity checking can impact raw speed"),
        ("fast_dev_run", 1, "Development run is not meant for raw speed evaluation"),
        ("detect_anomaly", True, "Anomaly detection can impact raw speed"),
        ("profiler", "simple", "Profiling can impact raw speed"),
    ],
)
def test_barebones_refuses_a_feature_by_name(argument: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        pl.Trainer(barebones=True, **{argument: value})
    assert str(info.value) == (
        f"`Trainer(barebones=True, {argument}={value!r})` was passed. {message} so it is disabled in barebones mode."
    )


def test_barebones_fit_runs_and_self_log_only_warns(tmp_path: Path, caplog: Any) -> None:
    class Logs(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("loss", 1.0)
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(barebones=True, default_root_dir=str(tmp_path), max_epochs=1)
    warns = pytest.warns(UserWarning, match=r"`Trainer\(barebones=True\)` is configured")
    with caplog.at_level(logging.INFO, logger=RANK_ZERO), warns:
        trainer.fit(Logs(batches=2))
    assert "`Trainer(barebones=True)` started running." in caplog.text
    assert trainer.global_step == 2 and trainer.callback_metrics == {}


def test_self_log_without_a_trainer_warns() -> None:
    with pytest.warns(UserWarning, match="the `self.trainer` reference is not registered on the model yet"):
        BoringModel().log("x", 1.0)


# -- datamodules ------------------------------------------------------------------------------------------


class Stream(IterableDataset[torch.Tensor]):
    def __iter__(self) -> Any:
        return iter(torch.randn(4, 32))


def test_from_datasets_makes_pls_dataloaders() -> None:
    train, val = RandomDataset(32, 8), [RandomDataset(32, 4), Stream()]
    dm = pl.LightningDataModule.from_datasets(train, val, batch_size=4, num_workers=0)
    loader = dm.train_dataloader()
    assert loader.dataset is train and loader.batch_size == 4 and loader.pin_memory
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)  # train shuffles
    first, second = dm.val_dataloader()
    assert isinstance(first.sampler, torch.utils.data.SequentialSampler) and second.dataset is val[1]
    with pytest.raises(pl.MisconfigurationException, match="`test_dataloader` must be implemented"):
        dm.test_dataloader()


def test_from_datasets_passes_what_init_takes() -> None:
    class Takes(pl.LightningDataModule):
        def __init__(self, other: int, batch_size: int = 1) -> None:
            super().__init__()
            self.other, self.batch_size = other, batch_size

    dm = Takes.from_datasets(RandomDataset(32, 8), batch_size=4, num_workers=2, other=5)
    assert (dm.other, dm.batch_size) == (5, 4)  # num_workers is not one of its arguments: not passed
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'other'"):
        Takes.from_datasets(RandomDataset(32, 8))

    class TakesAny(pl.LightningDataModule):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__()
            self.kwargs = kwargs

    assert TakesAny.from_datasets(batch_size=3, num_workers=1).kwargs == {"batch_size": 3, "num_workers": 1}


def test_datamodule_hooks_are_profiled(tmp_path: Path) -> None:
    class Data(BoringDataModule):
        def prepare_data(self) -> None:
            pass

        def state_dict(self) -> dict[str, Any]:
            return {"x": 1}

    trainer = quiet_trainer(
        tmp_path, profiler="simple", max_steps=1, limit_val_batches=0, enable_checkpointing=True
    )
    trainer.fit(BoringModel(), datamodule=Data())
    profiler = trainer.profiler
    assert isinstance(profiler, SimpleProfiler)
    for hook in ("prepare_data", "setup", "state_dict", "teardown"):
        assert len(profiler.recorded_durations[f"[LightningDataModule]Data.{hook}"]) == 1


# -- Trainer arguments -----------------------------------------------------------------------------------


def test_pl_trainer_environment_variables_are_defaults(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PL_TRAINER_LOGGER", "False")
    monkeypatch.setenv("PL_TRAINER_MAX_STEPS", "7")
    monkeypatch.setenv("PL_TRAINER_DEFAULT_ROOT_DIR", str(tmp_path))  # not a literal: kept as the string
    trainer = pl.Trainer()
    assert trainer.logger is None and trainer.max_steps == 7 and trainer.default_root_dir == str(tmp_path)
    assert pl.Trainer(max_steps=42, logger=True).max_steps == 42  # what is passed wins


def test_max_epochs_is_decided_when_fit_starts(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_epochs=None, max_steps=1)
    assert trainer.max_epochs is None
    trainer.fit(BoringModel())
    assert trainer.max_epochs == -1  # max_steps limits the run: no epoch limit


def test_fast_dev_run_1_is_true_and_its_logger_takes_any_call(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers.logger import DummyLogger

    class UsesExperiment(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.logger.experiment.add_histogram("w", self.layer.weight)  # a TensorBoard call, dropped
            self.logger.experiment[0].anything(1)
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(default_root_dir=str(tmp_path), fast_dev_run=1, enable_progress_bar=False)
    assert trainer.fast_dev_run is True
    assert isinstance(trainer.logger, DummyLogger)
    trainer.fit(UsesExperiment())
    assert trainer.global_step == 1
    assert pl.Trainer(fast_dev_run=3, logger=False).fast_dev_run == 3


def test_overfit_batches_makes_every_sampler_sequential_and_says_so(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader, Sampler, SequentialSampler

    class InOrderButNotSequential(Sampler[int]):
        def __init__(self, n: int) -> None:
            self.n = n

        def __iter__(self) -> Any:
            return iter(range(self.n))

        def __len__(self) -> int:
            return self.n

    class Model(BoringModel):
        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 8), sampler=InOrderButNotSequential(8))

        def val_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 8), sampler=InOrderButNotSequential(8))

    trainer = quiet_trainer(tmp_path, overfit_batches=2)
    with pytest.warns(UserWarning) as record:
        trainer.fit(Model())
    messages = [str(w.message) for w in record]
    for kind in ("train", "val"):
        assert (
            f"You requested to overfit but enabled {kind} dataloader shuffling. We are turning off the {kind} "
            "dataloader shuffling for you."
        ) in messages
    assert isinstance(trainer.train_dataloader.sampler, SequentialSampler)
    assert isinstance(trainer.val_dataloaders.sampler, SequentialSampler)
