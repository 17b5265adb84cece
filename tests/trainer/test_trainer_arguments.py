"""Trainer arguments: batch limits, validation cadence, stopping rules, debugging flags."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from torch.utils.data import DataLoader, IterableDataset


class Counting(BoringModel):
    """Counts training and validation batches per epoch."""

    def __init__(self, batches: int = 10, **kwargs: Any) -> None:
        super().__init__(batches=batches, **kwargs)
        self.train_batches: list[int] = []
        self.val_runs: list[tuple[int, int]] = []  # (epoch, batches)
        self._val_count = 0

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self.train_batches.append(batch_idx)
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_start(self) -> None:
        self._val_count = 0

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        self._val_count += 1
        return super().validation_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_runs.append((self.current_epoch, self._val_count))


@pytest.mark.parametrize(("limit", "expected"), [(0.5, 5), (3, 3), (1.0, 10), (0, 0)])
def test_limit_train_batches(tmp_path: Path, limit: float, expected: int) -> None:
    model = Counting()
    trainer = quiet_trainer(tmp_path, limit_train_batches=limit, limit_val_batches=0)
    trainer.fit(model)
    assert len(model.train_batches) == expected
    assert trainer.num_training_batches == expected


def test_limit_val_batches_and_sanity_steps(tmp_path: Path) -> None:
    model = Counting()
    trainer = quiet_trainer(tmp_path, limit_val_batches=0.3, num_sanity_val_steps=1, max_epochs=2)
    trainer.fit(model)
    assert model.val_runs == [(0, 3), (1, 3)]
    assert trainer.num_val_batches == [3]


def test_too_small_fraction_says_the_minimum(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match=r"Try at least `limit_train_batches=0.1`"):
        quiet_trainer(tmp_path, limit_train_batches=0.05).fit(Counting())


@pytest.mark.parametrize(
    ("kwargs", "runs"),
    [
        ({"val_check_interval": 0.5}, [(0, 10), (0, 10), (1, 10), (1, 10)]),
        ({"val_check_interval": 3}, [(0, 10), (0, 10), (0, 10), (1, 10), (1, 10), (1, 10)]),
        ({"check_val_every_n_epoch": 2, "max_epochs": 4}, [(1, 10), (3, 10)]),
        (
            {"val_check_interval": 4, "check_val_every_n_epoch": None},
            [(0, 10), (0, 10), (1, 10), (1, 10), (1, 10)],
        ),
    ],
)
def test_validation_cadence(tmp_path: Path, kwargs: dict[str, Any], runs: list[tuple[int, int]]) -> None:
    kwargs.setdefault("max_epochs", 2)
    model = Counting()
    quiet_trainer(tmp_path, num_sanity_val_steps=0, **kwargs).fit(model)
    assert model.val_runs == runs


def test_val_check_interval_beyond_the_epoch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be less than or equal to the number of the training batches"):
        quiet_trainer(tmp_path, val_check_interval=50).fit(Counting())


def test_fast_dev_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = Counting()
    trainer = quiet_trainer(tmp_path, fast_dev_run=2, max_epochs=5, logger=True)
    trainer.fit(model)
    assert model.train_batches == [0, 1]
    assert model.val_runs == [(0, 2)]
    assert trainer.global_step == 2 and trainer.num_sanity_val_steps == 0
    assert [type(lg).__name__ for lg in trainer.loggers] == ["DummyLogger"]
    assert "Running in `fast_dev_run` mode: will run the requested loop using 2 batch(es)" in caplog.text


def test_overfit_batches_turns_off_shuffling(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []

    class Shuffled(Counting):
        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 20, seed=3), batch_size=2, shuffle=True)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            seen.append(batch.clone())
            return super().training_step(batch, batch_idx)

    with pytest.warns(UserWarning, match="turning off the train dataloader shuffling"):
        quiet_trainer(tmp_path, overfit_batches=2, max_epochs=2).fit(Shuffled())
    assert len(seen) == 4
    assert torch.equal(seen[0], seen[2]) and torch.equal(seen[1], seen[3])
    assert torch.equal(seen[0], RandomDataset(32, 20, seed=3).data[:2])


def test_max_steps_and_min_epochs(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_steps=7, max_epochs=-1, limit_val_batches=0)
    trainer.fit(Counting())
    assert trainer.global_step == 7

    class StopsAtOnce(Counting):
        def on_train_batch_end(self, *args: Any) -> None:
            self.trainer.should_stop = True

    model = StopsAtOnce()
    trainer = quiet_trainer(tmp_path, min_epochs=2, max_epochs=5, limit_val_batches=0)
    trainer.fit(model)
    assert trainer.current_epoch == 2  # should_stop waits for min_epochs
    model = StopsAtOnce()
    trainer = quiet_trainer(tmp_path, max_epochs=5, limit_val_batches=0)
    trainer.fit(model)
    assert model.train_batches == [0] and trainer.current_epoch == 1


def test_max_time_stops_training(tmp_path: Path) -> None:
    class Slow(Counting):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            time.sleep(0.02)
            return super().training_step(batch, batch_idx)

    model = Slow()
    trainer = quiet_trainer(tmp_path, max_time={"seconds": 0.1}, max_epochs=None, limit_val_batches=0)
    assert trainer.max_epochs is None  # as PL: fit decides (another limit is set: no epoch limit)
    trainer.fit(model)
    assert trainer.max_epochs == -1
    assert 2 <= len(model.train_batches) < 10
    assert trainer.should_stop
    assert quiet_trainer(tmp_path, max_time="00:01:00:00")._max_time == 3600.0
    with pytest.raises(MisconfigurationException, match="DD:HH:MM:SS"):
        quiet_trainer(tmp_path, max_time="1 hour")


def test_max_epochs_default_warns_when_fit_starts_and_is_1000(tmp_path: Path) -> None:
    import warnings

    from lightning_kernel.trainer.utilities.warnings import PossibleUserWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Trainer made to validate or predict needs no epoch limit
        trainer = pl.Trainer(
            default_root_dir=str(tmp_path),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_train_batches=0,  # the fit below only has to start
            limit_val_batches=0,
        )
    assert trainer.max_epochs is None  # PL's: unset until fit
    with pytest.warns(PossibleUserWarning, match="Setting it to 1000 epochs"):
        trainer.fit(Counting(), train_dataloaders=DataLoader(RandomDataset(32, 2)))
    assert trainer.max_epochs == 1000


def test_on_train_batch_start_returning_minus_one_skips_the_rest_of_the_epoch(tmp_path: Path) -> None:
    class Skips(Counting):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> Any:
            return -1 if batch_idx == 3 else None

    model = Skips()
    quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0).fit(model)
    assert model.train_batches == [0, 1, 2, 0, 1, 2]


def test_reload_dataloaders_every_n_epochs(tmp_path: Path) -> None:
    loads: list[int] = []

    class Reloads(Counting):
        def train_dataloader(self) -> Any:
            loads.append(self.current_epoch)
            return super().train_dataloader()

    quiet_trainer(tmp_path, max_epochs=4, reload_dataloaders_every_n_epochs=2, limit_val_batches=0).fit(
        Reloads()
    )
    assert loads == [0, 2]


def test_iterable_dataset_without_length(tmp_path: Path) -> None:
    class Stream(IterableDataset[torch.Tensor]):
        def __iter__(self) -> Any:
            return iter(torch.randn(6, 32))

    class Model(Counting):
        def train_dataloader(self) -> Any:
            return DataLoader(Stream(), batch_size=2)

    last: list[bool] = []

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            last.append(trainer.is_last_batch)

    model = Model()
    trainer = quiet_trainer(tmp_path, max_epochs=2, callbacks=[Watch()], num_sanity_val_steps=0)
    trainer.fit(model)
    assert trainer.num_training_batches == float("inf")
    assert model.train_batches == [0, 1, 2, 0, 1, 2]
    assert last == [False, False, True, False, False, True]
    assert model.val_runs == [(0, 10), (1, 10)]  # validation at the end of each stream
    with pytest.raises(MisconfigurationException, match=r"IterableDataset.*val_check_interval"):
        quiet_trainer(tmp_path, val_check_interval=0.5).fit(Model())


def test_profiler_simple_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet_trainer(tmp_path, profiler="simple", limit_val_batches=0).fit(Counting(batches=2))
    report = [
        r.getMessage() for r in caplog.records if r.name == "lightning_kernel.trainer.profilers.profiler"
    ]
    assert report and "FIT Profiler Report" in report[0] and "[LightningModule]Counting." in report[0]
    with pytest.raises(MisconfigurationException, match="profiler='fancy' is not supported"):
        quiet_trainer(tmp_path, profiler="fancy")


def test_deterministic_sets_torch_flags(tmp_path: Path) -> None:
    try:
        quiet_trainer(tmp_path, deterministic=True, limit_val_batches=0).fit(Counting(batches=2))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_epochs": -2}, "`max_epochs` must be a non-negative integer or -1. You passed in -2."),
        ({"max_steps": -3}, "`max_steps` must be a non-negative integer or -1 \\(infinite steps\\)"),
        ({"accumulate_grad_batches": 0}, "`accumulate_grad_batches` must be an int >= 1"),
        (
            {"limit_train_batches": 1.5},
            "invalid value 1.5 for limit_train_batches, it has to be in \\[0.0, 1.0\\] or an int",
        ),
        ({"limit_val_batches": -1}, "invalid value -1 for limit_val_batches"),
        ({"val_check_interval": 1.5}, "invalid value 1.5 for val_check_interval"),
        (
            {"val_check_interval": 0.5, "check_val_every_n_epoch": None},
            "should be an integer or a time-based duration",
        ),
        ({"check_val_every_n_epoch": 1.0}, "`check_val_every_n_epoch` should be an integer, found 1.0"),
        ({"precision": "8-bit"}, "precision='8-bit' is not supported"),
        ({"strategy": "deepspeed"}, "strategy='deepspeed' is not supported"),
        ({"accelerator": "gpu"}, "no CUDA GPU is available"),
        ({"devices": 0}, "selects no device"),
        ({"check_val_every_n_epoch": 0}, "`check_val_every_n_epoch` must be an int >= 1"),
        ({"plugins": ["x"]}, "plugins= is not supported"),
    ],
)
def test_bad_arguments_say_what_is_wrong(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    if kwargs.get("accelerator") == "gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MisconfigurationException, match=message):
        quiet_trainer(tmp_path, **kwargs)


def test_properties_pl_users_read(tmp_path: Path) -> None:
    model = Counting(batches=4)
    trainer = quiet_trainer(tmp_path, max_epochs=3, num_sanity_val_steps=0)
    trainer.fit(model)
    assert trainer.estimated_stepping_batches == 12
    assert trainer.default_root_dir == str(tmp_path)
    assert trainer.log_dir == str(tmp_path)
    assert trainer.is_global_zero and trainer.world_size == 1 and trainer.global_rank == 0
    assert trainer.precision == "32-true"
    assert trainer.state.fn == "fit" and trainer.state.status == "finished" and trainer.state.stage is None
    assert trainer.lightning_module is model and model.trainer is trainer
    assert trainer.train_dataloader is not None and trainer.val_dataloaders is not None
    assert trainer._init_kwargs["max_epochs"] == 3
    assert trainer.checkpoint_callback is None and trainer.early_stopping_callback is None
    assert trainer.progress_bar_callback is None and trainer.logger is None


def test_estimated_stepping_batches_inside_configure_optimizers(tmp_path: Path) -> None:
    loads: list[int] = []

    class OneCycle(Counting):
        def train_dataloader(self) -> Any:
            loads.append(1)
            return super().train_dataloader()

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            total = self.trainer.estimated_stepping_batches
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    trainer = quiet_trainer(tmp_path, max_epochs=2, accumulate_grad_batches=3, limit_val_batches=0)
    trainer.fit(OneCycle(batches=10))
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 8  # ceil(10 / 3) * 2
    assert trainer.global_step == 8
    assert loads == [1]  # the loader estimated from is the one trained on
