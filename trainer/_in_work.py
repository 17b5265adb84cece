"""Training inside a ``LightningWork``: the one module of the Trainer that knows about the kernel.

A Trainer created while a Work's ``run()`` executes in a worker (the storage context is set and a
``LightningWork`` with ``_lk_in_run`` is on the stack) attaches itself to that Work, with no code from
the user:

- **progress as state**: the Work's public attribute ``trainer_state`` holds ``status``, ``stage``,
  ``epoch``, ``global_step``, ``metrics`` (``callback_metrics`` as floats) and the checkpoint Paths.
  Assigned through the Work's own ``__setattr__``, so every change is a ``work.state_changed`` event
  the flow and ``history`` see. Throttled to one event per ``PUBLISH_INTERVAL_S`` while training; the
  last value is always published when the call ends (finished, failed or interrupted).
- **checkpoints as Paths**: ``ModelCheckpoint`` callbacks without a ``dirpath`` write into the Work's
  ``lit://checkpoints`` folder (and keep ``last.ckpt``, so there is always something to resume from);
  the folder is persisted to the artifact store after each hook that wrote a checkpoint, and
  ``trainer_state["checkpoint_dir"]`` names it, so the worker restores it when the Work is launched again.
- **resume**: a ``fit()`` without ``ckpt_path`` in a Work whose last call did not finish resumes from
  the newest last checkpoint of that folder: ``ckpt_path="last"`` semantics, so global step, optimizer
  state and the loss curve carry on.
- **interruption**: while ``fit`` runs, SIGTERM and SIGINT (the worker's stop, a lost kernel) are held
  until the current training batch ends; then ``last.ckpt`` is written and persisted, and the worker's
  own handler runs (it stops the call). A resumed call therefore starts at the very next batch.

Approaches weighed: a hook in the worker that hands the Work to the Trainer (a kernel change, and a
second API); reading the Work off the call stack won, since ``run()`` is always on it. The attribute is
created on the Work (its state shape is otherwise fixed when the app starts) by a single
``object.__setattr__``; every value after that goes through the Work's public ``__setattr__``.
"""

import logging
import math
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from ._state import TrainerFn
from .callbacks._base import Callback

log = logging.getLogger("lightning_kernel.trainer.in_work")

ATTRIBUTE = "trainer_state"
"""The Work's public attribute that holds the Trainer's progress."""

CHECKPOINT_DIR = "lit://checkpoints"
"""The Work's folder for checkpoints (a Path, persisted as checkpoints are written)."""

PUBLISH_INTERVAL_S = 0.25
"""At most this many events per second while training: 4."""

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def attach(trainer: Any) -> "WorkLink | None":
    """The link to the Work whose ``run()`` created ``trainer``, or None outside a Work's worker."""
    context_module = sys.modules.get("lightning_kernel.storage._context")
    if context_module is None:  # no worker in this process imported the storage layer: not in a Work
        return None
    ctx = context_module.current_or_none()
    if ctx is None:
        return None
    work = _running_work(sys._getframe(1), ctx.work_name)
    if work is None:
        return None
    if trainer.strategy.distributed:
        log.info("A Trainer of several processes in a Work: its progress and checkpoints stay its own")
        return None
    link = WorkLink(trainer, work, ctx)
    trainer.callbacks.append(link.callback)
    return link


def detach(trainer: Any) -> None:
    """Undo :func:`attach` (the tuner's trial Trainers run inside the user's, not as the Work's)."""
    link = getattr(trainer, "_work_link", None)
    if link is not None:
        trainer._work_link = None
        if link.callback in trainer.callbacks:
            trainer.callbacks.remove(link.callback)


def _running_work(frame: FrameType | None, name: str) -> Any:
    from lightning_kernel import LightningWork

    while frame is not None:
        candidate = frame.f_locals.get("self")
        if (
            isinstance(candidate, LightningWork)
            and getattr(candidate, "_lk_in_run", False)
            and candidate._lk_name == name
        ):
            return candidate
        frame = frame.f_back
    return None


class WorkLink:
    """What one Trainer does for the Work it runs in; see the module docstring."""

    def __init__(self, trainer: Any, work: Any, ctx: Any) -> None:
        from lightning_kernel.storage import Path

        self.trainer = trainer
        self.work = work
        self.ctx = ctx
        self.folder = Path(CHECKPOINT_DIR, origin=ctx.work_name)
        self.local_folder = self.folder.local("the Trainer's checkpoint folder")
        self.callback = _WorkCallback(self)
        self._dirty = False
        self._wrote = False
        """Whether this Trainer wrote into the folder (else it holds only files the Work was given)."""
        self._last_publish = 0.0
        self._pending = False
        self._held: list[int] = []
        self._previous: dict[int, Any] = {}
        self._fn: TrainerFn | None = None
        previous = getattr(work, ATTRIBUTE, None)
        self._resumable = isinstance(previous, dict) and previous.get("status") in ("running", "interrupted")

    # -- around one Trainer call ----------------------------------------------------------------------
    def before_run(self, fn: TrainerFn, ckpt_path: str | None) -> str | None:
        """Point checkpoints at the Work's folder; the checkpoint to resume from, when there is one."""
        from .callbacks import ModelCheckpoint

        self._fn = fn
        # last, so that in each hook the checkpoint callbacks have written before this one persists
        callbacks = self.trainer.callbacks
        if self.callback in callbacks:
            callbacks.remove(self.callback)
        callbacks.append(self.callback)
        for callback in callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback._set_dirpath(self.local_folder)
                if callback.save_last is None:
                    callback.save_last = True  # always something to resume from
        if fn == TrainerFn.FITTING:
            self._hold_signals()
            if ckpt_path is None and self._resumable:
                ckpt_path = self._resume_from()
                if ckpt_path is not None:
                    log.info(f"Resuming {self.ctx.work_name}'s training from {ckpt_path}")
            self._resumable = False
        else:
            self.publish("running", force=True)  # fit says so at on_train_start, once a resume is restored
        return ckpt_path

    def after_run(self, status: str) -> None:
        """The call ended (``finished``, ``failed``, ``interrupted``): persist and publish the last state.

        A stop that came after the last batch is honoured now, once everything is saved.
        """
        previous = dict(self._previous)
        self._release_signals()
        self.persist(force=True)
        self.publish(status, force=True)
        if self._held and status == "finished":
            signum = self._held[0]
            self._held = []
            _deliver(signum, previous.get(signum))

    def _resume_from(self) -> str | None:
        if not os.path.isdir(self.local_folder):
            return None
        files = [
            os.path.join(self.local_folder, f) for f in os.listdir(self.local_folder) if f.endswith(".ckpt")
        ]
        last = [f for f in files if os.path.basename(f).startswith("last")]
        chosen = last or files
        return max(chosen, key=os.path.getmtime) if chosen else None

    # -- checkpoints ------------------------------------------------------------------------------------
    def saved(self, filepath: str) -> None:
        """``Trainer.save_checkpoint`` wrote ``filepath``: the folder is persisted after this hook."""
        if os.path.abspath(str(filepath)).startswith(self.local_folder + os.sep):
            self._dirty = self._wrote = True

    def persist(self, force: bool = False) -> None:
        if not (self._dirty or (force and self._wrote)) or not os.path.isdir(self.local_folder):
            return
        from lightning_kernel.storage._context import using
        from lightning_kernel.storage._persist import persist_paths

        self._dirty = False
        with using(self.ctx):
            persist_paths([self.folder])

    # -- state ------------------------------------------------------------------------------------------
    def publish(self, status: str = "running", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < PUBLISH_INTERVAL_S:
            self._pending = True
            return
        self._last_publish = now
        self._pending = False
        setattr_state(self.work, self._snapshot(status))

    def _snapshot(self, status: str) -> dict[str, Any]:
        from lightning_kernel.storage import Path

        trainer = self.trainer
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            number = float(value.item() if hasattr(value, "item") else value)
            metrics[key] = number if math.isfinite(number) else None  # state is JSON: no NaN
        best = last = None
        score = None
        callback = trainer.checkpoint_callback
        if callback is not None:
            best_path = getattr(callback, "best_model_path", "")
            last_path = getattr(callback, "last_model_path", "")
            best, last = self._as_path(best_path), self._as_path(last_path)
            best_score = getattr(callback, "best_model_score", None)
            if best_score is not None and math.isfinite(float(best_score)):
                score = float(best_score)
        folder = Path(CHECKPOINT_DIR, origin=self.ctx.work_name)
        return {
            "status": status,
            "stage": self._fn.value if self._fn is not None else None,
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "metrics": metrics,
            "checkpoint_dir": folder.to_dict(),
            "best_checkpoint": best.to_dict() if best is not None else None,
            "best_model_score": score,
            "last_checkpoint": last.to_dict() if last is not None else None,
        }

    def _as_path(self, filepath: str) -> Any:
        from lightning_kernel.storage import Path

        if not filepath:
            return None
        full = os.path.abspath(filepath)
        if not full.startswith(self.local_folder + os.sep):
            return None  # a checkpoint outside the Work's folder is not one of its Paths
        relative = os.path.relpath(full, self.local_folder).replace(os.sep, "/")
        return Path(f"{CHECKPOINT_DIR}/{relative}", origin=self.ctx.work_name)

    # -- signals ----------------------------------------------------------------------------------------
    def _hold_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the worker's stop then acts at once
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        self._held.append(signum)

    def _release_signals(self) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def stop_if_signalled(self, at_batch_end: bool) -> None:
        """A held signal: save ``last.ckpt`` (at a batch end), persist, then let the worker stop the call."""
        if not self._held:
            return
        signum = self._held[0]
        self._held = []
        if at_batch_end and self.trainer.state.fn == TrainerFn.FITTING:
            path = os.path.join(self.local_folder, "last.ckpt")
            self.trainer.save_checkpoint(path)
            callback = self.trainer.checkpoint_callback
            if callback is not None and hasattr(callback, "last_model_path"):
                callback.last_model_path = path
        handler = self._previous.get(signum)
        self.after_run("interrupted")
        _deliver(signum, handler)


def _deliver(signum: int, handler: Any) -> None:
    """Run the handler a held signal was meant for (the worker's raises its stop inside this call)."""
    if callable(handler):
        handler(signum, None)
    elif signum == signal.SIGINT and handler != signal.SIG_IGN:
        raise KeyboardInterrupt
    elif handler != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def setattr_state(work: Any, value: dict[str, Any]) -> None:
    """Assign the Work's ``trainer_state``, creating the attribute the first time."""
    if ATTRIBUTE not in work.__dict__:
        # The Work's state shape is fixed when the app starts; this attribute joins it once, here.
        object.__setattr__(work, ATTRIBUTE, None)
    setattr(work, ATTRIBUTE, value)


class _WorkCallback(Callback):
    """The link's hooks into the loops: publish progress, persist checkpoints, act on held signals."""

    def __init__(self, link: WorkLink) -> None:
        self.link = link

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.link.publish("running", force=True)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        link = self.link
        link.persist()
        link.stop_if_signalled(at_batch_end=True)
        link.publish()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        self.link.stop_if_signalled(at_batch_end=not trainer.sanity_checking)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self.link.persist()
        if not trainer.sanity_checking:
            self.link.publish()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.link.persist()
        self.link.publish()

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.link.publish()
