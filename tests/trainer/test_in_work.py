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
from helpers import BoringModel
from lightning_kernel import LightningWork
from lightning_kernel.storage._artifacts import ArtifactStore
from lightning_kernel.storage._context import StorageContext, latest_record, using
from lightning_kernel.trainer import _in_work
from lightning_kernel.trainer.callbacks import ModelCheckpoint


class _Stopped(BaseException):
    """What the worker's handler raises inside run() (its _Stop)."""


class Train(LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 2
        self.kill_at: int | None = None
        self.tune = False

    def run(self) -> None:
        work = self

        class Kill(pl.Callback):
            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                if trainer.global_step == work.kill_at:
                    os.kill(os.getpid(), signal.SIGTERM)

        trainer = pl.Trainer(
            max_epochs=self.epochs,
            callbacks=[Kill(), ModelCheckpoint(monitor="val_loss")],
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
