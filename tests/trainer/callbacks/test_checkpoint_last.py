"""``ModelCheckpoint(save_last=...)`` as in PL 2.6: ``last`` follows the checkpoints.

At an epoch's or a validation's end, ``last`` is written only when a checkpoint was saved at that step
(a link is refreshed whenever there is a checkpoint to point at); and when training ends with no
checkpoint written at all, ``save_last=True`` still leaves one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer.callbacks import ModelCheckpoint


class WorseEachEpoch(BoringModel):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("score", float(self.current_epoch))  # mode="min": only epoch 0 is ever the best


def _step(path: Path) -> int:
    return int(torch.load(path)["global_step"])


def _fit(tmp_path: Path, model: BoringModel, callback: ModelCheckpoint, **kwargs: Any) -> Any:
    trainer = quiet_trainer(tmp_path, callbacks=[callback], enable_checkpointing=True, **kwargs)
    trainer.fit(model)
    return trainer


def test_last_is_not_rewritten_when_no_checkpoint_was_saved(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="score", save_last=True, filename="{epoch}")
    trainer = _fit(tmp_path, WorseEachEpoch(batches=2), callback, max_epochs=3)
    assert sorted(os.listdir(tmp_path / "ck")) == ["epoch=0.ckpt", "last.ckpt"]
    assert trainer.global_step == 6
    assert _step(tmp_path / "ck" / "last.ckpt") == 2  # written with epoch 0's checkpoint, not since
    assert callback.last_model_path == str(tmp_path / "ck" / "last.ckpt")


def test_last_follows_every_n_epochs(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_epochs=2, save_last=True, filename="{epoch}")
    _fit(tmp_path, BoringModel(batches=2), callback, max_epochs=3)
    assert sorted(os.listdir(tmp_path / "ck")) == ["epoch=1.ckpt", "last.ckpt"]
    assert _step(tmp_path / "ck" / "last.ckpt") == 4


def test_a_last_link_points_at_the_best_checkpoint_all_along(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="score", save_last="link", filename="{epoch}")
    _fit(tmp_path, WorseEachEpoch(batches=2), callback, max_epochs=3)
    assert os.readlink(tmp_path / "ck" / "last.ckpt") == "epoch=0.ckpt"


def test_training_end_saves_last_when_nothing_else_was_saved(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=0, save_last=True)
    _fit(tmp_path, BoringModel(batches=2), callback, max_epochs=3)
    assert os.listdir(tmp_path / "ck") == ["last.ckpt"]
    assert _step(tmp_path / "ck" / "last.ckpt") == 6


def test_training_end_saves_last_without_validation_or_epoch_end_saves(tmp_path: Path) -> None:
    model = BoringModel(batches=2)
    model.validation_step = None  # type: ignore[assignment,method-assign]
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True, save_on_train_epoch_end=False)
    _fit(tmp_path, model, callback, max_epochs=2)
    assert os.listdir(tmp_path / "ck") == ["last.ckpt"]
    assert _step(tmp_path / "ck" / "last.ckpt") == 4


def test_fast_dev_run_still_saves_nothing(tmp_path: Path) -> None:
    # PL 2.6.6 writes last.ckpt here from on_train_end; its own message says checkpointing is suppressed
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    _fit(tmp_path, BoringModel(batches=2), callback, fast_dev_run=True)
    assert not (tmp_path / "ck").exists() or os.listdir(tmp_path / "ck") == []
