"""ModelCheckpoint file names: PL's templates, auto-inserted metric names, versions and validation."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.callbacks import ModelCheckpoint

fmt = ModelCheckpoint()._format_checkpoint_name


def test_default_template_is_epoch_and_step() -> None:
    assert fmt(None, {"epoch": torch.tensor(3), "step": torch.tensor(2)}) == "epoch=3-step=2"
    assert fmt("", {"epoch": 3, "step": 2}) == "epoch=3-step=2"


def test_format_spec_and_auto_inserted_names() -> None:
    metrics = {"epoch": torch.tensor(3), "val_loss": torch.tensor(0.12345)}
    assert fmt("{epoch}-{val_loss:.2f}", metrics) == "epoch=3-val_loss=0.12"
    assert fmt("{epoch:03d}", metrics) == "epoch=003"
    assert (
        fmt("epoch={epoch:03d}-{val_loss:.3f}", metrics, auto_insert_metric_name=False) == "epoch=003-0.123"
    )


def test_missing_keys_are_zero_and_longer_names_win() -> None:
    assert fmt("{epoch}-{missing}", {"epoch": 1}) == "epoch=1-missing=0"
    assert fmt("{epoch}-{epoch_test}", {"epoch": 1, "epoch_test": 2}) == "epoch=1-epoch_test=2"


def test_a_subclass_changes_the_join_and_equals_characters(tmp_path: Path) -> None:
    class Colons(ModelCheckpoint):
        CHECKPOINT_JOIN_CHAR = "@"
        CHECKPOINT_EQUALS_CHAR = ":"

    callback = Colons(dirpath=tmp_path)
    assert callback._format_checkpoint_name("{epoch},{acc:.2f}", {"epoch": 3, "acc": 0.03}, prefix="t") == (
        "t@epoch:3,acc:0.03"
    )
    assert callback.format_checkpoint_name({"epoch": 1, "step": 2}, ver=1) == str(
        tmp_path / "epoch:1@step:2@v1.ckpt"
    )


def test_names_with_dots_and_slashes() -> None:
    assert fmt("{val.loss:.1f}", {"val.loss": torch.tensor(0.25)}) == "val.loss=0.2"
    assert fmt("{val/loss:.1f}", {"val/loss": torch.tensor(0.75)}) == "val/loss=0.8"


def test_prefix_version_and_dirpath(tmp_path: Path) -> None:
    assert fmt("{epoch}", {"epoch": 2}, prefix="best") == "best-epoch=2"
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}")
    assert checkpoint.format_checkpoint_name({"epoch": 2}) == os.path.join(str(tmp_path), "epoch=2.ckpt")
    assert checkpoint.format_checkpoint_name({"epoch": 2}, ver=3) == os.path.join(
        str(tmp_path), "epoch=2-v3.ckpt"
    )
    last = checkpoint.format_checkpoint_name({}, ModelCheckpoint.CHECKPOINT_NAME_LAST)
    assert last == os.path.join(str(tmp_path), "last.ckpt")
    assert ModelCheckpoint(filename="{epoch}").format_checkpoint_name({"epoch": 1}) == "epoch=1.ckpt"


def test_dirpath_urls_are_kept_and_local_paths_resolved(tmp_path: Path) -> None:
    assert ModelCheckpoint(dirpath="s3://bucket/run").dirpath == "s3://bucket/run"
    assert ModelCheckpoint(dirpath=tmp_path / "a" / ".." / "b").dirpath == str(tmp_path / "b")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "best"}, "`mode` can be min, max but got best"),
        ({"save_top_k": -2}, "save_top_k=-2"),
        ({"save_top_k": 3}, "No quantity for top_k to track"),
        ({"every_n_train_steps": -1}, "every_n_train_steps=-1"),
        ({"every_n_epochs": 2, "every_n_train_steps": 5}, "mutually exclusive"),
        ({"every_n_epochs": 1, "train_time_interval": timedelta(seconds=1)}, "mutually exclusive"),
        ({"save_last": "always"}, "save_last='always'"),
    ],
)
def test_invalid_configurations_say_what_is_wrong(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        ModelCheckpoint(**kwargs)  # type: ignore[arg-type]


def test_state_key_tells_instances_apart() -> None:
    a = ModelCheckpoint(monitor="val_loss")
    b = ModelCheckpoint(monitor="val_acc", mode="max")
    assert a.state_key != b.state_key
    assert a.state_key.startswith("ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'")
    assert ModelCheckpoint(every_n_train_steps=5).every_n_train_steps == 5
    assert ModelCheckpoint().every_n_epochs == 1
