"""``_in_work``: a Trainer made inside a Work's ``run()`` reports to it, without a kernel.

The worker's part is played here by its real pieces: a ``StorageContext`` over a real artifact store
(a folder), the Work's change hook (what publishes ``work.state_changed``), and a SIGTERM handler that
raises inside ``run()`` as the worker's does. The CLI end to end is ``tests/e2e/test_trainer_in_work.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel
from lightning_kernel import LightningWork
from lightning_kernel.storage._artifacts import ArtifactStore
from lightning_kernel.storage._context import StorageContext, latest_record, using
from lightning_kernel.storage._persist import find_paths, restore_paths
from lightning_kernel.trainer import _in_work
from lightning_kernel.trainer.callbacks import ModelCheckpoint


class _Stopped(BaseException):
    """What the worker's handler raises inside run() (its _Stop)."""


SEEN: list[tuple[str, int]] = []
"""What the Work's Trainer did, call after call: ("val", global step) per validation batch, ("train", step)."""


class _Crash(BaseException):
    """The process dies here: no stop checkpoint is written (a kill -9, a lost machine)."""


class Train(LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 2
        self.kill_at: int | None = None
        self.kill_in_validation: int | None = None  # SIGTERM at this validation batch of epoch 0
        self.crash_at: int | None = None
        self.dirpath: str | None = None
        self.tune = False

    def run(self) -> None:
        work = self

        class Kill(pl.Callback):
            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                SEEN.append(("train", trainer.global_step))
                if trainer.global_step == work.kill_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                if trainer.global_step == work.crash_at:
                    raise _Crash()

            def on_validation_batch_end(
                self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, i: int
            ) -> None:
                if trainer.sanity_checking:
                    return
                SEEN.append(("val", trainer.global_step))
                if i == work.kill_in_validation and trainer.current_epoch == 0:
                    os.kill(os.getpid(), signal.SIGTERM)

        trainer = pl.Trainer(
            max_epochs=self.epochs,
            callbacks=[Kill(), ModelCheckpoint(monitor="val_loss", dirpath=self.dirpath)],
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
        )
        model = BoringModel(batches=4)
        if self.tune:
            pl.tuner.Tuner(trainer).lr_find(model, num_training=3)
        trainer.fit(model)
        self._trainer = trainer


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Train, list[dict[str, Any]], Any]]:
    """A Work as a worker hosts it: named, frozen, with a change hook and a storage context."""
    changes: list[dict[str, Any]] = []
    work = Train()
    object.__setattr__(work, "_lk_name", "root.train")
    object.__setattr__(work, "_lk_frozen", True)
    object.__setattr__(
        work, "_lk_on_change", lambda name, value: changes.append(value) if name == "trainer_state" else None
    )
    root = tmp_path / "root.train"
    root.mkdir()
    store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    ctx = StorageContext(store=store, run_id="run1", work_name="root.train", work_root=str(root))
    previous_cwd = os.getcwd()
    previous_handler = signal.signal(signal.SIGTERM, _raise_stopped)
    os.chdir(root)
    try:
        with using(ctx):
            yield work, changes, ctx
    finally:
        os.chdir(previous_cwd)
        signal.signal(signal.SIGTERM, previous_handler)


@pytest.fixture(autouse=True)
def _seen() -> None:
    SEEN.clear()


def _raise_stopped(signum: int, frame: Any) -> None:
    raise _Stopped()


def _call(work: Train) -> None:
    object.__setattr__(work, "_lk_in_run", True)
    try:
        Train.run.__lk_user_run__(work)  # type: ignore[attr-defined]  # the user's run, as the worker calls it
    finally:
        object.__setattr__(work, "_lk_in_run", False)


def test_progress_becomes_work_state_and_checkpoints_become_paths(worker: Any) -> None:
    work, changes, ctx = worker
    _call(work)
    assert changes[0]["status"] == "running" and changes[-1]["status"] == "finished"
    final = changes[-1]
    assert (final["epoch"], final["global_step"]) == (2, 8) and set(final["metrics"]) == {"val_loss"}
    assert final["checkpoint_dir"] == {
        "type": "__path__",
        "path": "lit://checkpoints",
        "origin": "root.train",
    }
    assert final["best_checkpoint"]["path"].startswith("lit://checkpoints/epoch=")
    assert final["last_checkpoint"]["path"] == "lit://checkpoints/last.ckpt"
    assert len(changes) < 8  # throttled: not one event per step
    # the folder is in the artifact store already, and named by the Work's state (so it is restored)
    record = latest_record(ctx.store, "run1", "root.train", "lit://checkpoints/last.ckpt")
    assert record is not None and record["path"] == "lit://checkpoints"
    assert work.trainer_state == final


def test_a_stop_checkpoints_at_the_batch_end_and_the_next_call_resumes(worker: Any) -> None:
    work, changes, _ = worker
    work.kill_at = 3  # before any ModelCheckpoint save: the stop's checkpoint is the first file
    with pytest.raises(_Stopped):
        _call(work)
    assert changes[-1]["status"] == "interrupted" and changes[-1]["global_step"] == 3
    assert signal.getsignal(signal.SIGTERM) is _raise_stopped  # the worker's handler is back
    changes.clear()
    work.kill_at = None
    _call(work)

    assert changes[0]["global_step"] == 3  # restored from last.ckpt before the first report
    assert changes[-1]["status"] == "finished" and changes[-1]["global_step"] == 8
    assert work._trainer.ckpt_path.endswith(os.path.join("checkpoints", "last.ckpt"))


def test_a_finished_training_is_not_resumed_by_the_next_call(worker: Any) -> None:
    work, changes, _ = worker
    _call(work)
    work.epochs = 3
    _call(work)
    assert work._trainer.ckpt_path is None and changes[-1]["global_step"] == 12


def test_tuner_trials_are_not_the_works_training(worker: Any) -> None:
    work, changes, _ = worker
    work.tune = True
    _call(work)
    steps = [c["global_step"] for c in changes]
    assert steps == sorted(steps) and steps[-1] == 8  # no trial's steps among them


def test_outside_a_work_nothing_attaches(tmp_path: Path) -> None:
    trainer = pl.Trainer(default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False)
    assert trainer._work_link is None
    assert not any(isinstance(cb, _in_work._WorkCallback) for cb in trainer.callbacks)


def _relaunch(work: Train, ctx: Any, *lost: Path) -> None:
    """The Work on a fresh machine: its folders are gone, and the worker restores its persisted Paths."""
    import shutil

    for folder in lost:
        for entry in os.scandir(folder):  # the folder itself stays: it is the worker's cwd
            shutil.rmtree(entry.path) if entry.is_dir() else os.remove(entry.path)
    restore_paths([p for p in find_paths(list(vars(work).values())) if p._origin in (None, "root.train")])


def _uninterrupted(tmp_path: Path) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(0)  # as the first call started (the autouse fixture)
    model = BoringModel(batches=4)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[ModelCheckpoint(dirpath=str(tmp_path / "plain"), monitor="val_loss")],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model)
    return float(trainer.callback_metrics["val_loss"]), [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_checkpoint_folder_of_its_own_is_persisted_and_resumed_from(
    worker: Any, tmp_path: Path, where: str
) -> None:
    work, changes, ctx = worker
    work.dirpath = "my_ckpts" if where == "inside" else str(tmp_path / "elsewhere")
    work.crash_at = 6  # after epoch 0's checkpoint (step 4), with no stop checkpoint of its own
    with pytest.raises(_Crash):
        _call(work)
    dirs = changes[-1]["checkpoint_dirs"]
    if where == "inside":
        assert dirs == [{"type": "__path__", "path": "lit://my_ckpts", "origin": "root.train"}]
        assert changes[-1]["best_checkpoint"]["path"] == "lit://my_ckpts/epoch=0-step=4.ckpt"
    else:
        assert len(dirs) == 1 and dirs[0]["path"].startswith("lit://checkpoint_dirs/")
    record = latest_record(ctx.store, "run1", "root.train", dirs[0]["path"] + "/epoch=0-step=4.ckpt")
    assert record is not None  # in the artifact store, not only on this machine

    lost = [Path(ctx.work_root)] + ([tmp_path / "elsewhere"] if where == "outside" else [])
    _relaunch(work, ctx, *lost)
    changes.clear()
    work.crash_at = None
    _call(work)
    assert changes[0]["global_step"] == 4  # resumed from the folder's checkpoint, restored
    expected = os.path.join(
        str(tmp_path / "elsewhere") if where == "outside" else "my_ckpts", "epoch=0-step=4.ckpt"
    )
    assert work._trainer.ckpt_path.endswith(expected)
    assert changes[-1]["status"] == "finished" and changes[-1]["global_step"] == 8


def test_a_stop_during_validation_resumes_with_that_whole_validation(worker: Any, tmp_path: Path) -> None:
    work, changes, _ = worker
    work.kill_in_validation = 1  # the second of epoch 0's four validation batches
    with pytest.raises(_Stopped):
        _call(work)
    assert changes[-1]["status"] == "interrupted" and changes[-1]["global_step"] == 4
    assert SEEN[-2:] == [("val", 4), ("val", 4)]
    SEEN.clear()
    work.kill_in_validation = None
    _call(work)
    # the resumed call validates first, all four batches, then trains epoch 1
    assert SEEN[:5] == [("val", 4)] * 4 + [("train", 5)]
    assert changes[-1]["status"] == "finished" and changes[-1]["global_step"] == 8
    # and ends as a run never stopped: same weights, same validation, same best checkpoint
    val_loss, weights = _uninterrupted(tmp_path)
    assert float(work._trainer.callback_metrics["val_loss"]) == val_loss
    model = work._trainer.lightning_module
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), weights, strict=True))
    assert os.path.basename(work._trainer.checkpoint_callback.best_model_path) == "epoch=1-step=8.ckpt"
