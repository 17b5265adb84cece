"""Behaviours PL's own tests rely on (issue 8): loadable checkpoints, PL's errors, warnings and info
lines, Ctrl+C, dataloader shapes, persistent workers, hparams and datamodule text."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import numpy
import pytest
import torch
from helpers import BoringDataModule, BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

RANK_ZERO = "lightning_kernel.trainer.utilities.rank_zero"

# -- checkpoints ------------------------------------------------------------------------------------------


def test_checkpoints_load_with_torch_load_defaults_while_numpy_is_used(tmp_path: Path) -> None:
    numpy.random.seed(3)  # numpy in use: its generator state goes into the checkpoint
    trainer = quiet_trainer(tmp_path, enable_checkpointing=True, max_epochs=2)
    trainer.fit(BoringModel())
    path = trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    checkpoint = torch.load(path)  # weights_only=True, torch's default since 2.6
    assert checkpoint["global_step"] == 8
    assert checkpoint["rng_states"]["numpy"]["kind"] == "MT19937"
    numpy.random.seed(99)
    from lightning_kernel.trainer._rng import restore_rng

    restore_rng(checkpoint["rng_states"])  # what a mid-epoch resume does with them
    assert numpy.random.get_state()[1].tolist() == checkpoint["rng_states"]["numpy"]["keys"]
    resumed = quiet_trainer(tmp_path, max_epochs=3)
    resumed.fit(BoringModel(), ckpt_path=path, weights_only=True)
    assert resumed.global_step == 12


def test_save_on_exception_writes_a_checkpoint_of_the_failing_moment(tmp_path: Path) -> None:
    class Fails(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.trainer.global_step == 3:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_on_exception=True, filename="{step}")
    with pytest.raises(RuntimeError, match="boom"):
        quiet_trainer(tmp_path, callbacks=[callback], max_epochs=3, enable_checkpointing=True).fit(Fails())
    assert sorted(os.listdir(tmp_path / "ck")) == ["step=3.ckpt"]
    assert torch.load(tmp_path / "ck" / "step=3.ckpt")["global_step"] == 3


def test_step_interval_save_that_monitors_a_validation_metric_waits_for_validation(tmp_path: Path) -> None:
    saved: list[tuple[int, float]] = []

    class Spy(ModelCheckpoint):
        def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
            saved.append((trainer.global_step, float(trainer.callback_metrics["val_loss"])))
            super()._save_checkpoint(trainer, filepath)

    callback = Spy(dirpath=tmp_path / "ck", monitor="val_loss", every_n_train_steps=2, save_top_k=-1)
    trainer = quiet_trainer(
        tmp_path, callbacks=[callback], max_epochs=2, num_sanity_val_steps=0, enable_checkpointing=True
    )
    trainer.fit(BoringModel())
    # the first due save (step 2) had no val_loss yet: it happened after the epoch's validation
    assert [step for step, _ in saved] == [4, 6, 8]
    assert all(loss == loss for _, loss in saved)


# -- errors and their wording -----------------------------------------------------------------------------


def test_pl_error_types(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match=r"`Trainer.validate\(\)` requires a `LightningModule` when it hasn't"
    ):
        quiet_trainer(tmp_path).validate()
    trainer = quiet_trainer(tmp_path)
    trainer.fit(BoringModel())
    with pytest.raises(
        ValueError, match=re.escape('ckpt_path="best")` is set but `ModelCheckpoint` is not configured.')
    ):
        trainer.validate(ckpt_path="best")
    no_best = quiet_trainer(
        tmp_path,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "none", save_top_k=0)],
        enable_checkpointing=True,
    )
    no_best.fit(BoringModel())
    with pytest.raises(ValueError, match="is not configured to save the best model"):
        no_best.test(ckpt_path="best")


def test_validate_after_fit_takes_the_best_model_and_says_so(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, enable_checkpointing=True)
    trainer.fit(BoringModel())
    with pytest.warns(UserWarning, match="The best model of the previous `fit` call will be used"):
        trainer.validate(verbose=False)
    assert trainer.ckpt_path == trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]


def test_val_check_interval_past_the_epoch_is_fine_without_validation(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, val_check_interval=10, limit_val_batches=0)
    trainer.fit(BoringModel())  # PL 2.6.2: nothing to schedule, nothing to refuse
    assert trainer.global_step == 4
    with pytest.raises(ValueError, match=r"`val_check_interval` \(10\) must be less than or equal"):
        quiet_trainer(tmp_path, val_check_interval=10).fit(BoringModel())


# -- info lines and Ctrl+C --------------------------------------------------------------------------------


def test_info_lines_go_through_logging_under_pl_style_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        quiet_trainer(tmp_path, limit_train_batches=1)
        pl.seed_everything(5)
    messages = {(r.name, r.getMessage()) for r in caplog.records}
    assert (
        RANK_ZERO,
        "`Trainer(limit_train_batches=1)` was configured so 1 batch per epoch will be used.",
    ) in messages
    assert (RANK_ZERO, "GPU available: False, used: False") in messages
    assert (RANK_ZERO, "TPU available: False, using: 0 TPU cores") in messages
    assert ("lightning_kernel.trainer.utilities.seed", "Seed set to 5") in messages
    assert "GPU available" not in capsys.readouterr().out  # logged, not printed


def test_keyboard_interrupt_is_a_graceful_stop(tmp_path: Path) -> None:
    seen: list[str] = []

    class Interrupts(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 1:
                raise KeyboardInterrupt
            return super().training_step(batch, batch_idx)

    class Tell(pl.Callback):
        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            seen.append(type(exception).__name__)

    handler = signal.getsignal(signal.SIGINT)
    trainer = quiet_trainer(tmp_path, callbacks=[Tell()])
    with pytest.raises(SystemExit) as info:
        trainer.fit(Interrupts())
    assert info.value.code == 1 and isinstance(info.value.__cause__, KeyboardInterrupt)
    assert trainer.interrupted and seen == ["KeyboardInterrupt"]
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl+C works again afterwards


# -- dataloaders ------------------------------------------------------------------------------------------


def test_a_list_of_train_loaders_stays_a_list(tmp_path: Path) -> None:
    loaders = [DataLoader(RandomDataset(32, 4), batch_size=2), DataLoader(RandomDataset(32, 8), batch_size=2)]

    class Two(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return {"loss": self.step(batch[0]) + self.step(batch[1])}

    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Two(), train_dataloaders=loaders)
    assert isinstance(trainer.train_dataloader, list) and len(trainer.train_dataloader) == 2
    single = quiet_trainer(tmp_path, limit_val_batches=0)
    single.fit(BoringModel(), train_dataloaders=[loaders[0]])
    assert isinstance(single.train_dataloader, list) and single.train_dataloader[0].batch_size == 2


def test_dataloader_idx_with_one_loader_is_pls_runtime_error(tmp_path: Path) -> None:
    class NeedsIdx(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int) -> Any:
            return None

    with pytest.raises(RuntimeError, match="You provided only a single `val_dataloader`, but have included"):
        quiet_trainer(tmp_path).validate(NeedsIdx())

    class NoIdx(BoringModel):
        def val_dataloader(self) -> Any:
            return [super().val_dataloader(), super().val_dataloader()]

        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            return None

    with pytest.raises(RuntimeError, match="You provided multiple `val_dataloader`, but no `dataloader_idx`"):
        quiet_trainer(tmp_path).validate(NoIdx())


def test_persistent_workers_are_stopped_when_fit_ends(tmp_path: Path) -> None:
    loader = DataLoader(RandomDataset(32, 8), batch_size=2, num_workers=1, persistent_workers=True)
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(BoringModel(), train_dataloaders=loader)
    assert loader._iterator is None  # its worker process was shut down, not left for the collector


# -- hyperparameters and the datamodule ---------------------------------------------------------------


class _Parent(pl.LightningModule):
    def __init__(self, a: int = 1, b: int = 2, **kwargs: Any) -> None:
        super().__init__()
        self.save_hyperparameters()


class _Child(_Parent):
    def __init__(self, c: int = 3, **kwargs: Any) -> None:
        super().__init__(a=10, **kwargs)


class _Inner(pl.LightningModule):
    def __init__(self, x: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()


class _Outer(pl.LightningModule):
    def __init__(self, y: int = 2) -> None:
        super().__init__()
        self.inner = _Inner(x=9)


@dataclasses.dataclass(eq=False)
class _Data(pl.LightningModule):
    lr: float = 0.1
    depth: int = 3

    def __post_init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()


def test_save_hyperparameters_collects_as_pl_does() -> None:
    child = _Child(c=5, extra=7)
    assert dict(child.hparams) == {"a": 10, "b": 2, "extra": 7, "c": 5}  # the parent's arguments too
    assert dict(_Outer(y=3).inner.hparams) == {"x": 9, "y": 3}  # an enclosing module's, as PL
    assert dict(_Data(lr=0.5).hparams) == {"lr": 0.5, "depth": 3}


def test_save_hyperparameters_add_up_and_bad_arguments_are_value_and_key_errors() -> None:
    class Twice(pl.LightningModule):
        def __init__(self, a: int = 1, b: int = 2, net: nn.Module | None = None) -> None:
            super().__init__()
            self.save_hyperparameters("a")
            self.save_hyperparameters("b")

    assert dict(Twice().hparams) == {"a": 1, "b": 2}
    for bad, error, text in (
        (5, ValueError, "Primitives"),
        ([1], ValueError, "Unsupported config type"),
        ("nope", KeyError, "not arguments of __init__"),
    ):

        class Bad(pl.LightningModule):
            def __init__(self, a: int = 1, _bad: Any = bad) -> None:
                super().__init__()
                self.save_hyperparameters(_bad)

        with pytest.raises(error, match=text):
            Bad()


def test_datamodule_str_lists_each_stage() -> None:
    assert str(pl.LightningDataModule()) == os.linesep.join(
        [
            "{Train dataloader: None}",
            "{Validation dataloader: None}",
            "{Test dataloader: None}",
            "{Predict dataloader: None}",
        ]
    )
    assert str(BoringDataModule(batches=3)).splitlines()[0] == "{Train dataloader: size=6}"
