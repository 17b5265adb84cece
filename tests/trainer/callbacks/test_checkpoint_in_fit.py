"""ModelCheckpoint driven by the real Trainer: where files go, which are kept, and resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer._checkpoint import load_checkpoint
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.callbacks import ModelCheckpoint
from lightning_kernel.trainer.loggers import CSVLogger
from scripted import ScriptedModel


def _files(folder: str | Path) -> list[str]:
    return sorted(os.listdir(folder))


def _trainer(tmp_path: Path, callback: ModelCheckpoint, **kwargs: Any) -> Any:
    kwargs.setdefault("max_epochs", 4)
    kwargs.setdefault("num_sanity_val_steps", 0)
    return quiet_trainer(tmp_path, callbacks=[callback], enable_checkpointing=True, **kwargs)


def test_default_folder_follows_the_logger_and_keeps_the_latest(tmp_path: Path) -> None:
    callback = ModelCheckpoint()
    trainer = _trainer(tmp_path, callback, max_epochs=2, logger=CSVLogger(tmp_path))
    trainer.fit(BoringModel(batches=4))
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert callback.dirpath == str(folder)
    assert _files(folder) == ["epoch=1-step=8.ckpt"]
    assert callback.best_model_path == str(folder / "epoch=1-step=8.ckpt")
    assert trainer.checkpoint_callback is callback


def test_without_logger_files_go_to_default_root_dir(tmp_path: Path) -> None:
    callback = ModelCheckpoint()
    _trainer(tmp_path, callback, max_epochs=1).fit(BoringModel(batches=3))
    assert _files(tmp_path / "checkpoints") == ["epoch=0-step=3.ckpt"]


def test_top_k_keeps_the_best_and_deletes_the_rest(tmp_path: Path) -> None:
    callback = ModelCheckpoint(
        dirpath=tmp_path / "ck",
        filename="{epoch}-{val_score:.2f}",
        monitor="val_score",
        save_top_k=2,
        save_last=True,
    )
    _trainer(tmp_path, callback).fit(ScriptedModel([0.5, 0.3, 0.4, 0.1]))
    assert _files(tmp_path / "ck") == [
        "epoch=1-val_score=0.30.ckpt",
        "epoch=3-val_score=0.10.ckpt",
        "last.ckpt",
    ]
    assert callback.best_model_path == str(tmp_path / "ck" / "epoch=3-val_score=0.10.ckpt")
    assert float(callback.best_model_score) == pytest.approx(0.1)  # type: ignore[arg-type]
    assert callback.kth_best_model_path == str(tmp_path / "ck" / "epoch=1-val_score=0.30.ckpt")
    assert sorted(float(v) for v in callback.best_k_models.values()) == pytest.approx([0.1, 0.3])
    assert callback.last_model_path == str(tmp_path / "ck" / "last.ckpt")
    last = load_checkpoint(callback.last_model_path, weights_only=False)
    assert last["epoch"] == 3
    state = last["callbacks"][callback.state_key]
    assert state["best_model_path"] == callback.best_model_path
    assert state["dirpath"] == str(tmp_path / "ck")


def test_max_mode_and_save_all(tmp_path: Path) -> None:
    best = ModelCheckpoint(dirpath=tmp_path / "max", monitor="val_score", mode="max", filename="{epoch}")
    everything = ModelCheckpoint(dirpath=tmp_path / "all", save_top_k=-1, filename="{epoch}")
    trainer = quiet_trainer(
        tmp_path,
        callbacks=[best, everything],
        enable_checkpointing=True,
        max_epochs=3,
        num_sanity_val_steps=0,
    )
    trainer.fit(ScriptedModel([0.2, 0.9, 0.5]))
    assert _files(tmp_path / "max") == ["epoch=1.ckpt"]
    assert _files(tmp_path / "all") == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]
    assert trainer.checkpoint_callbacks == [best, everything]


def test_monitor_on_training_metric_without_validation(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="train_score", filename="{epoch}")
    model = ScriptedModel([3.0, 1.0, 2.0], key="train_score", on_train=True)
    _trainer(tmp_path, callback, max_epochs=3, limit_val_batches=0).fit(model)
    assert _files(tmp_path / "ck") == ["epoch=1.ckpt"]


def test_every_n_train_steps(tmp_path: Path) -> None:
    callback = ModelCheckpoint(
        dirpath=tmp_path / "ck", every_n_train_steps=3, save_top_k=-1, filename="{step}"
    )
    _trainer(tmp_path, callback, max_epochs=2).fit(BoringModel(batches=4))
    assert _files(tmp_path / "ck") == ["step=3.ckpt", "step=6.ckpt"]


def test_every_n_epochs(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_epochs=2, save_top_k=-1, filename="{epoch}")
    _trainer(tmp_path, callback, max_epochs=5).fit(BoringModel(batches=2))
    assert _files(tmp_path / "ck") == ["epoch=1.ckpt", "epoch=3.ckpt"]


def test_name_collisions_get_version_suffixes(tmp_path: Path) -> None:
    ranked = ModelCheckpoint(
        dirpath=tmp_path / "ranked", filename="model", monitor="val_score", save_top_k=-1
    )
    _trainer(tmp_path, ranked, max_epochs=3).fit(ScriptedModel([0.3, 0.2, 0.1]))
    assert _files(tmp_path / "ranked") == ["model-v1.ckpt", "model-v2.ckpt", "model.ckpt"]
    # without a monitor the latest file replaces the previous one of the same name, as in PL
    latest = ModelCheckpoint(dirpath=tmp_path / "latest", filename="model")
    _trainer(tmp_path, latest, max_epochs=3).fit(BoringModel(batches=2))
    assert _files(tmp_path / "latest") == ["model.ckpt"]
    assert load_checkpoint(latest.best_model_path, weights_only=False)["epoch"] == 2


def test_save_last_link_points_at_the_newest(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", filename="{epoch}", save_last="link")
    _trainer(tmp_path, callback, max_epochs=2).fit(BoringModel(batches=2))
    link = tmp_path / "ck" / "last.ckpt"
    assert link.is_symlink()
    assert os.readlink(link) == "epoch=1.ckpt"
    assert _files(tmp_path / "ck") == ["epoch=1.ckpt", "last.ckpt"]


def test_save_weights_only(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", filename="w", save_weights_only=True)
    _trainer(tmp_path, callback, max_epochs=1).fit(BoringModel(batches=2))
    saved = load_checkpoint(str(tmp_path / "ck" / "w.ckpt"), weights_only=False)
    assert "state_dict" in saved
    assert "optimizer_states" not in saved


def test_a_monitor_that_was_never_logged_is_an_error_listing_the_keys(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_los")
    with pytest.raises(MisconfigurationException, match=r"could not find the monitored key.*'val_loss'"):
        _trainer(tmp_path, callback, max_epochs=2).fit(BoringModel(batches=2))


def test_resume_keeps_the_top_k_bookkeeping(tmp_path: Path) -> None:
    values = [0.5, 0.3, 0.4, 0.1]

    def run(max_epochs: int, ckpt_path: str | None) -> ModelCheckpoint:
        callback = ModelCheckpoint(
            dirpath=tmp_path / "ck", filename="{epoch}", monitor="val_score", save_top_k=2, save_last=True
        )
        _trainer(tmp_path, callback, max_epochs=max_epochs).fit(ScriptedModel(values), ckpt_path=ckpt_path)
        return callback

    first = run(2, None)
    assert _files(tmp_path / "ck") == ["epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt"]
    with pytest.warns(UserWarning, match="exists and is not empty"):
        resumed = run(4, str(tmp_path / "ck" / "last.ckpt"))
    # epoch=0 (0.5) dropped out of the top 2 after the resume: only possible if the bookkeeping came back
    assert _files(tmp_path / "ck") == ["epoch=1.ckpt", "epoch=3.ckpt", "last.ckpt"]
    assert resumed.best_model_path == str(tmp_path / "ck" / "epoch=3.ckpt")
    assert first.best_model_path == str(tmp_path / "ck" / "epoch=1.ckpt")


def test_checkpoints_on_s3(
    tmp_path: Path, s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec
    import s3fs

    # an s3:// URL carries no endpoint: fsspec's config sends every S3FileSystem to moto here
    monkeypatch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}})
    s3fs.S3FileSystem.clear_instance_cache()
    callback = ModelCheckpoint(
        dirpath=f"s3://{s3_bucket}/run", filename="{epoch}", monitor="val_score", save_top_k=1, save_last=True
    )
    _trainer(tmp_path, callback, max_epochs=3).fit(ScriptedModel([0.3, 0.1, 0.2]))
    fs = fsspec.filesystem("s3")
    assert sorted(os.path.basename(p) for p in fs.ls(f"{s3_bucket}/run")) == ["epoch=1.ckpt", "last.ckpt"]
    assert callback.best_model_path == f"s3://{s3_bucket}/run/epoch=1.ckpt"
    best = load_checkpoint(callback.best_model_path, weights_only=False)
    assert best["epoch"] == 1
    assert set(best["state_dict"]) == {"layer.weight", "layer.bias"}
    assert isinstance(best["state_dict"]["layer.weight"], torch.Tensor)
