"""A time-based ``val_check_interval`` (PL 2.6): a ``"DD:HH:MM:SS"`` string, a ``timedelta`` or a dict.

Validation runs after the training batch at which that much wall-clock time has passed since the last
validation (or since training started). The tests use the two ends that need no clock: a zero interval
(always due) and a day (never due while the test runs).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from lightning_kernel.trainer.callbacks import Callback, ModelCheckpoint


class CountValidations(Callback):
    def __init__(self) -> None:
        self.at: list[tuple[int, int]] = []  # (epoch, global step) of each validation

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.at.append((trainer.current_epoch, trainer.global_step))


@pytest.mark.parametrize("interval", ["00:00:01:30", {"minutes": 1, "seconds": 30}, timedelta(seconds=90)])
def test_each_spelling_is_the_same_interval(tmp_path: Path, interval: Any) -> None:
    trainer = quiet_trainer(tmp_path, val_check_interval=interval)
    assert trainer._val_check_time_interval == 90.0
    assert trainer.val_check_interval == interval  # kept as given


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("00:01:30", "Invalid time format for `val_check_interval`: '00:01:30'. Expected 'DD:HH:MM:SS'."),
        (
            "00:00:xx:30",
            "Non-integer component in `val_check_interval` string: '00:00:xx:30'. Use 'DD:HH:MM:SS'.",
        ),
    ],
)
def test_a_malformed_string_is_pls_error(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(MisconfigurationException) as info:
        quiet_trainer(tmp_path, val_check_interval=value)
    assert str(info.value) == message


def test_a_time_interval_is_allowed_without_epoch_gating(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, val_check_interval="00:00:00:10", check_val_every_n_epoch=None)
    assert trainer.check_val_every_n_epoch is None


def test_an_elapsed_interval_validates_after_every_batch(tmp_path: Path) -> None:
    counter = CountValidations()
    trainer = quiet_trainer(tmp_path, max_epochs=2, val_check_interval=timedelta(0), callbacks=[counter])
    trainer.fit(BoringModel(batches=4))
    assert counter.at == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (1, 6), (1, 7), (1, 8)]
    assert trainer.val_check_batch is None  # no batch schedule
    # PL's counters of the fit's validation loop: 4 batches per validation, counted per epoch
    assert trainer.fit_loop.epoch_loop.val_loop.batch_progress.total.completed == 16


def test_an_interval_not_yet_elapsed_does_not_validate_at_epoch_end(tmp_path: Path) -> None:
    counter = CountValidations()
    trainer = quiet_trainer(tmp_path, max_epochs=2, val_check_interval={"days": 1}, callbacks=[counter])
    trainer.fit(BoringModel(batches=4))
    assert counter.at == []  # time-based: the clock alone decides, the epoch's end is no check
    assert trainer.global_step == 8


def test_epoch_gating_limits_the_clock_to_every_nth_epoch(tmp_path: Path) -> None:
    counter = CountValidations()
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=4,
        val_check_interval="00:00:00:00",
        check_val_every_n_epoch=2,
        callbacks=[counter],
    )
    trainer.fit(BoringModel(batches=2))
    assert counter.at == [(1, 3), (1, 4), (3, 7), (3, 8)]


def test_an_early_stop_still_validates_before_it_stops(tmp_path: Path) -> None:
    class StopAtStep3(Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 3:
                trainer.should_stop = True

    counter = CountValidations()
    trainer = quiet_trainer(
        tmp_path, max_epochs=3, val_check_interval={"days": 1}, callbacks=[StopAtStep3(), counter]
    )
    trainer.fit(BoringModel(batches=4))
    assert counter.at == [(0, 3)]
    assert trainer.global_step == 3


def test_model_checkpoint_saves_after_each_timed_validation(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=-1, filename="{step}"
    )
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=1,
        val_check_interval=timedelta(0),
        callbacks=[checkpoint],
        enable_checkpointing=True,
    )
    trainer.fit(BoringModel(batches=3))
    assert sorted(os.listdir(tmp_path / "ck")) == ["step=1.ckpt", "step=2.ckpt", "step=3.ckpt"]
    assert checkpoint._should_save_on_train_epoch_end(trainer) is False


def test_fast_dev_run_ignores_the_clock(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, fast_dev_run=2, val_check_interval={"days": 1})
    assert trainer._val_check_time_interval is None
    counter = CountValidations()
    trainer.callbacks.append(counter)
    trainer.fit(BoringModel(batches=4))
    assert counter.at == [(0, 2)]  # once, at the end of its two batches
