"""Checkpoints: PL's layout, resume parity (at epoch ends and mid-epoch), load_from_checkpoint,
bad files, and a round trip through S3 (moto's server)."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import CheckpointError, load_checkpoint
from torch import Tensor, nn
from torch.utils.data import DataLoader


class Noisy(BoringModel):
    """Dropout, a shuffled loader, Adam and a scheduler: every piece of state a resume must bring back."""

    def __init__(self, batches: int = 4) -> None:
        super().__init__(batches=batches)
        self.save_hyperparameters()
        self.drop = nn.Dropout(0.3)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.drop(x))

    def train_dataloader(self) -> Any:
        return DataLoader(RandomDataset(32, self.batches * 2, seed=5), batch_size=2, shuffle=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)}}


class SaveAt(pl.Callback):
    """Saves a checkpoint from inside the loop, where ModelCheckpoint would."""

    def __init__(self, path: Path, hook: str, epoch: int, step: int | None = None) -> None:
        self.path, self.hook, self.epoch, self.step = path, hook, epoch, step

    def _maybe(self, trainer: Any, hook: str) -> None:
        at_epoch = hook == self.hook and trainer.current_epoch == self.epoch and not trainer.sanity_checking
        if at_epoch and (self.step is None or trainer.global_step == self.step):
            trainer.save_checkpoint(self.path)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self._maybe(trainer, "on_train_batch_end")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._maybe(trainer, "on_validation_end")

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._maybe(trainer, "on_train_epoch_end")


def _weights(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("hook", "epoch", "step", "interval"),
    [
        ("on_train_epoch_end", 1, None, None),  # between epochs
        ("on_validation_end", 1, None, None),  # after the epoch's last batch, before its epoch-end hooks
        ("on_train_batch_end", 1, 6, None),  # mid-epoch: 2 of epoch 1's 4 batches done
        # the epoch's last batch, before the validation it triggers (a Work's interrupt saves there):
        # the resumed run validates first (a validation draws from the generators, as its loader starts)
        ("on_train_batch_end", 1, 8, None),
        ("on_train_batch_end", 1, 6, 2),  # a mid-epoch batch that triggers validation (val_check_interval)
    ],
    ids=[
        "epoch-end",
        "validation-end",
        "mid-epoch",
        "last-batch-before-validation",
        "before-interval-validation",
    ],
)
def test_resume_ends_with_the_same_weights(
    tmp_path: Path, hook: str, epoch: int, step: int | None, interval: int | None
) -> None:
    ckpt = tmp_path / "mid.ckpt"
    torch.manual_seed(7)
    model = Noisy()
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=4,
        callbacks=[SaveAt(ckpt, hook, epoch, step)],
        limit_val_batches=2,
        val_check_interval=interval,
    )
    trainer.fit(model)
    assert ckpt.exists()
    torch.manual_seed(99)  # a different generator state: the checkpoint must bring back its own
    resumed = Noisy()
    trainer2 = quiet_trainer(tmp_path, max_epochs=4, limit_val_batches=2, val_check_interval=interval)
    trainer2.fit(resumed, ckpt_path=str(ckpt))
    _assert_same(_weights(model), _weights(resumed))
    assert (
        (trainer2.current_epoch, trainer2.global_step)
        == (trainer.current_epoch, trainer.global_step)
        == (4, 16)
    )
    assert (
        trainer2.lr_scheduler_configs[0].scheduler.get_last_lr()
        == trainer.lr_scheduler_configs[0].scheduler.get_last_lr()
    )


def test_fit_twice_as_long_from_a_finished_run(tmp_path: Path) -> None:
    torch.manual_seed(1)
    straight = Noisy()
    quiet_trainer(tmp_path, max_epochs=4).fit(straight)
    torch.manual_seed(1)
    first = Noisy()
    t1 = quiet_trainer(tmp_path, max_epochs=2)
    t1.fit(first)
    t1.save_checkpoint(tmp_path / "two.ckpt")
    second = Noisy()
    quiet_trainer(tmp_path, max_epochs=4).fit(second, ckpt_path=str(tmp_path / "two.ckpt"))
    _assert_same(_weights(straight), _weights(second))


def test_checkpoint_layout(tmp_path: Path) -> None:
    model = Noisy()
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    trainer.fit(model)
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    checkpoint = load_checkpoint(str(tmp_path / "a.ckpt"))
    for key in (
        "epoch",
        "global_step",
        "pytorch-lightning_version",
        "state_dict",
        "loops",
        "callbacks",
        "optimizer_states",
        "lr_schedulers",
        "hyper_parameters",
        "hparams_name",
    ):
        assert key in checkpoint, key
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 4)
    assert checkpoint["hyper_parameters"] == {"batches": 4}
    assert checkpoint["hparams_name"] == "kwargs"
    assert len(checkpoint["optimizer_states"]) == 1 and "state" in checkpoint["optimizer_states"][0]
    fit_loop = checkpoint["loops"]["fit_loop"]
    assert fit_loop["epoch_progress"]["current"]["completed"] == 1
    assert fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"] == 4
    trainer.save_checkpoint(tmp_path / "w.ckpt", weights_only=True)
    weights = load_checkpoint(str(tmp_path / "w.ckpt"))
    assert "optimizer_states" not in weights and "callbacks" not in weights and "state_dict" in weights


def test_load_from_checkpoint_rebuilds_from_hyperparameters(tmp_path: Path) -> None:
    model = Noisy(batches=3)
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    trainer.fit(model)
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    loaded = Noisy.load_from_checkpoint(str(tmp_path / "a.ckpt"))
    assert loaded.batches == 3 and loaded.hparams.batches == 3
    _assert_same(_weights(model), _weights(loaded))
    overridden = Noisy.load_from_checkpoint(str(tmp_path / "a.ckpt"), batches=5)
    assert overridden.batches == 5


def test_hyperparameters_of_subclasses_and_ignore() -> None:
    class Base(pl.LightningModule):
        def __init__(self, width: int, depth: int = 2, **kwargs: Any) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["depth"])

    class Child(Base):
        def __init__(self, width: int = 8, extra: str = "x") -> None:
            super().__init__(width=width * 2, depth=3, note="n")

    child = Child(width=4)
    assert dict(child.hparams) == {"width": 4, "note": "n", "extra": "x"}
    assert child.hparams_initial == child.hparams

    class Named(pl.LightningModule):
        def __init__(self, a: int, b: int) -> None:
            super().__init__()
            self.save_hyperparameters("a")

    assert dict(Named(1, 2).hparams) == {"a": 1}


def test_corrupt_truncated_and_foreign_checkpoints_are_named(tmp_path: Path) -> None:
    model = BoringModel()
    good = tmp_path / "good.ckpt"
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    trainer.fit(model)
    trainer.save_checkpoint(good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(random.Random(0).randbytes(300))
    unlucky = tmp_path / "unlucky.ckpt"  # random bytes once made the unpickler raise OverflowError
    unlucky.write_bytes(b"\x80\x02" + b"\x96" + (2**63).to_bytes(8, "little") + b"\x00" * 20)
    for path in (truncated, garbage, unlucky):
        with pytest.raises(CheckpointError, match="cannot be read as a torch checkpoint"):
            quiet_trainer(tmp_path, max_epochs=2).fit(BoringModel(), ckpt_path=str(path))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": model.state_dict()}, foreign)
    with pytest.raises(
        CheckpointError, match=r"has no \['state_dict'\] key.*not written by Trainer.save_checkpoint"
    ):
        quiet_trainer(tmp_path, max_epochs=2).fit(BoringModel(), ckpt_path=str(foreign))
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        torch.save([1, 2], foreign)
        BoringModel.load_from_checkpoint(str(foreign))
    with pytest.raises(FileNotFoundError, match=r"missing.ckpt"):
        quiet_trainer(tmp_path, max_epochs=2).fit(BoringModel(), ckpt_path=str(tmp_path / "missing.ckpt"))

    class Wider(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(32, 3)

    with pytest.raises(CheckpointError, match="weights do not fit Wider"):
        quiet_trainer(tmp_path, max_epochs=2).fit(Wider(), ckpt_path=str(good))


def test_weights_only_checkpoint_cannot_resume_training(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    trainer.fit(BoringModel())
    trainer.save_checkpoint(tmp_path / "w.ckpt", weights_only=True)
    with pytest.raises(CheckpointError, match="weights only"):
        quiet_trainer(tmp_path, max_epochs=2).fit(BoringModel(), ckpt_path=str(tmp_path / "w.ckpt"))
    # but it evaluates fine
    assert quiet_trainer(tmp_path).validate(BoringModel(), ckpt_path=str(tmp_path / "w.ckpt"), verbose=False)


def test_save_checkpoint_before_any_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="only possible if a model is attached"):
        quiet_trainer(tmp_path).save_checkpoint(tmp_path / "x.ckpt")


def test_atomic_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.ckpt"
    pl.atomic_save({"state_dict": {"w": torch.ones(2)}}, str(target))
    pl.atomic_save({"state_dict": {"w": torch.zeros(2)}}, str(target))
    assert os.listdir(tmp_path / "sub") == ["a.ckpt"]
    assert torch.equal(load_checkpoint(str(target))["state_dict"]["w"], torch.zeros(2))


def test_ckpt_path_last_finds_model_checkpoints_last_file(tmp_path: Path) -> None:
    from lightning_kernel.trainer.callbacks import ModelCheckpoint

    torch.manual_seed(3)
    straight = Noisy()
    quiet_trainer(tmp_path / "a", max_epochs=3).fit(straight)
    torch.manual_seed(3)
    first = Noisy()
    callback = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    quiet_trainer(tmp_path / "b", max_epochs=2, enable_checkpointing=True, callbacks=[callback]).fit(first)
    assert (tmp_path / "ck" / "last.ckpt").exists()
    second = Noisy()
    callback2 = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    trainer = quiet_trainer(tmp_path / "b", max_epochs=3, enable_checkpointing=True, callbacks=[callback2])
    trainer.fit(second, ckpt_path="last")
    assert trainer.ckpt_path == str(tmp_path / "ck" / "last.ckpt")
    _assert_same(_weights(straight), _weights(second))


def test_ckpt_path_last_without_a_file_warns_and_starts_fresh(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    with pytest.warns(UserWarning, match="no last checkpoint available"):
        trainer.fit(BoringModel(), ckpt_path="last")
    assert trainer.global_step == 4


def test_s3_checkpoint_round_trip(tmp_path: Path, s3_server: Any, s3_bucket: str, monkeypatch: Any) -> None:
    from lightning_kernel.trainer.callbacks import ModelCheckpoint

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    root = f"s3://{s3_bucket}/run"
    torch.manual_seed(11)
    straight = Noisy()
    quiet_trainer(tmp_path, max_epochs=3).fit(straight)
    torch.manual_seed(11)
    first = Noisy()
    callback = ModelCheckpoint(dirpath=f"{root}/checkpoints", save_last=True)
    trainer = quiet_trainer(root, max_epochs=2, enable_checkpointing=True, callbacks=[callback])
    trainer.fit(first)
    assert trainer.default_root_dir == root
    trainer.save_checkpoint(f"{root}/manual.ckpt")
    assert load_checkpoint(f"{root}/manual.ckpt")["global_step"] == 8
    second = Noisy()
    callback2 = ModelCheckpoint(dirpath=f"{root}/checkpoints", save_last=True)
    trainer2 = quiet_trainer(root, max_epochs=3, enable_checkpointing=True, callbacks=[callback2])
    trainer2.fit(second, ckpt_path="last")
    assert trainer2.ckpt_path is not None and trainer2.ckpt_path.startswith("s3://")
    _assert_same(_weights(straight), _weights(second))
    loaded = Noisy.load_from_checkpoint(f"{root}/manual.ckpt")
    _assert_same(_weights(first), _weights(loaded))


def test_a_checkpoint_written_mid_validation_resumes_with_that_whole_validation(tmp_path: Path) -> None:
    class SaveMidValidation(pl.Callback):
        def __init__(self) -> None:
            self.batches: list[tuple[int, int]] = []

        def on_validation_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, i: int
        ) -> None:
            if not trainer.sanity_checking:
                self.batches.append((trainer.global_step, i))
                if trainer.global_step == 4 and i == 1:
                    trainer.save_checkpoint(tmp_path / "mid.ckpt")

    saver = SaveMidValidation()
    quiet_trainer(tmp_path, max_epochs=1, callbacks=[saver]).fit(BoringModel(batches=4))
    assert (4, 3) in saver.batches  # the run itself went on to the end of that validation

    resumed = SaveMidValidation()
    trainer = quiet_trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0, callbacks=[resumed])
    trainer.fit(BoringModel(batches=4), ckpt_path=tmp_path / "mid.ckpt")
    # all of step 4's validation again before epoch 1's batches, then epoch 1's own
    assert resumed.batches == [(4, 0), (4, 1), (4, 2), (4, 3), (8, 0), (8, 1), (8, 2), (8, 3)]
    assert trainer.global_step == 8


@pytest.mark.parametrize(
    ("val_check_interval", "stop_at"), [(1.0, 16), (0.5, 12)], ids=["epoch-end", "mid-epoch"]
)
def test_a_resume_from_mid_validation_continues_the_same_loss_curve(
    tmp_path: Path, val_check_interval: float, stop_at: int
) -> None:
    """The validation's dataloader iterator draws from the global RNG when it is made; the resumed run
    makes it again, so it must start from the RNG as it was before that draw, or every later epoch
    shuffles differently (seen as another final loss, in a Work stopped during validation)."""

    class Shuffled(BoringModel):
        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 64), batch_size=8, shuffle=True)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            out = super().training_step(batch, batch_idx)
            self.losses.append(float(out["loss"]))
            return out

    class Abort(Exception):
        pass

    class StopMidValidation(pl.Callback):
        def on_validation_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            if not trainer.sanity_checking and trainer.global_step == stop_at:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                raise Abort()

    def fit(callbacks: list[Any], ckpt: Path | None = None) -> list[float]:
        pl.seed_everything(5)
        model = Shuffled()
        model.losses = []
        trainer = quiet_trainer(
            tmp_path, max_epochs=4, val_check_interval=val_check_interval, callbacks=callbacks
        )
        with contextlib.suppress(Abort):
            trainer.fit(model, ckpt_path=ckpt)
        return model.losses

    straight = fit([])
    before = fit([StopMidValidation()])
    after = fit([], tmp_path / "mid.ckpt")
    assert len(before) == stop_at and before + after == straight
