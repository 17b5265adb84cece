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
  A ``ModelCheckpoint`` with its own local ``dirpath`` is persisted the same way: inside the Work's
  folder (a relative ``dirpath``) it is that folder's Path; elsewhere on the machine its files are
  mirrored (hard links) into ``lit://checkpoint_dirs/<key>`` and copied back on resume.
  ``trainer_state["checkpoint_dirs"]`` names these Paths. A remote ``dirpath`` (``s3://``) is durable
  already and is only resumed from.
- **resume**: a ``fit()`` without ``ckpt_path`` in a Work whose last call did not finish resumes from
  the last full checkpoint that call wrote, which ``lit://checkpoints/.resume.json`` names (written with
  every checkpoint, persisted with them, so it is as new as the files on disk even when the Work's last
  state never reached the kernel; the newest ``last*.ckpt`` of those folders if it is gone):
  ``ckpt_path="last"`` semantics, so global step, optimizer state and the loss curve carry on.
- **interruption**: while ``fit`` runs, SIGTERM and SIGINT (the worker's stop, a lost kernel) are held
  until the current training or validation batch ends; then ``last.ckpt`` is written and persisted, and
  the worker's own handler runs (it stops the call). A resumed call therefore starts at the very next
  training batch; a stop during validation resumes with that whole validation.

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

RESUME_FILE = ".resume.json"
"""In the Work's checkpoint folder: which checkpoint a resumed call starts from."""

MIRROR_DIR = "lit://checkpoint_dirs"
"""Where the checkpoint folders outside the Work's folder are mirrored, one sub-folder each."""

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
        self.work_root = os.path.realpath(ctx.work_root)
        self.callback = _WorkCallback(self)
        self.folders: dict[str, Any] = {}
        """Other persisted checkpoint folders: local folder -> its Path (in the Work's folder, or a mirror)."""
        self.mirrors: dict[str, str] = {}
        """Checkpoint folders outside the Work's folder -> the local folder of their mirror."""
        self.remote: list[str] = []
        """Checkpoint folders that are URLs (durable already): searched on resume, never persisted."""
        self._dirty = False
        self._wrote = False
        """Whether this Trainer wrote into the folders (else they hold only files the Work was given)."""
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
            if not isinstance(callback, ModelCheckpoint):
                continue
            if callback.dirpath is None:
                callback._set_dirpath(self.local_folder)
                if callback.save_last is None:
                    callback.save_last = True  # always something to resume from
            else:
                self._track(str(callback.dirpath))
        if fn == TrainerFn.FITTING:
            self._hold_signals()
            if ckpt_path is None and self._resumable:
                for source, mirror in self.mirrors.items():
                    _copy_missing(mirror, source)  # the mirror came back with the Work's Paths
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

    def _track(self, dirpath: str) -> None:
        """Persist (and resume from) a ModelCheckpoint's own folder."""
        import hashlib

        from lightning_kernel.storage import Path

        from ._fs import is_local

        if not is_local(dirpath):
            if dirpath not in self.remote:
                self.remote.append(dirpath)
            return
        folder = os.path.realpath(dirpath.removeprefix("file://"))
        if _inside(folder, self.local_folder) or folder in self.folders:
            return
        if _inside(folder, self.work_root):
            relative = os.path.relpath(folder, self.work_root).replace(os.sep, "/")
            self.folders[folder] = Path(f"lit://{relative}", origin=self.ctx.work_name)
            return
        key = hashlib.sha256(folder.encode()).hexdigest()[:16]
        mirror = Path(f"{MIRROR_DIR}/{key}", origin=self.ctx.work_name)
        self.folders[folder] = mirror
        self.mirrors[folder] = mirror.local("a mirror of a checkpoint folder")

    def _resume_from(self) -> str | None:
        recorded = self._read_resume_file()
        if recorded is not None and _exists(recorded):
            return recorded
        files = [
            f for folder in [self.local_folder, *self.folders, *self.remote] for f in _checkpoints_in(folder)
        ]
        last = [f for f in files if os.path.basename(f).startswith("last")]
        chosen = last or files
        from ._fs import modified

        return max(chosen, key=modified) if chosen else None

    def _write_resume_file(self, filepath: str) -> None:
        """Name ``filepath`` as the checkpoint to resume from: its ``lit://`` path when it is one of the
        Work's (the Work's folder may be elsewhere next time), else the path or URL as saved."""
        import json

        as_path = self._as_path(filepath)
        inside_mirror = as_path is not None and as_path.lit.startswith(MIRROR_DIR + "/")
        entry = {"lit": as_path.lit} if as_path is not None and not inside_mirror else {"path": filepath}
        os.makedirs(self.local_folder, exist_ok=True)
        target = os.path.join(self.local_folder, RESUME_FILE)
        tmp = f"{target}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({**entry, "global_step": int(self.trainer.global_step)}, f)
        os.replace(tmp, target)

    def _read_resume_file(self) -> str | None:
        import json

        from lightning_kernel.storage import Path

        try:
            with open(os.path.join(self.local_folder, RESUME_FILE)) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        if isinstance(entry.get("lit"), str):
            return str(Path(entry["lit"], origin=self.ctx.work_name).local("the checkpoint to resume from"))
        return entry["path"] if isinstance(entry.get("path"), str) else None

    # -- checkpoints ------------------------------------------------------------------------------------
    def saved(self, filepath: str, weights_only: bool = False) -> None:
        """``Trainer.save_checkpoint`` wrote ``filepath``: its folder is persisted after this hook."""
        from ._fs import is_local

        if not weights_only:
            self._write_resume_file(str(filepath))
            self._dirty = self._wrote = True
        if not is_local(str(filepath)):
            return
        full = os.path.realpath(str(filepath).removeprefix("file://"))
        if _inside(full, self.local_folder) or any(_inside(full, folder) for folder in self.folders):
            self._dirty = self._wrote = True

    def persist(self, force: bool = False) -> None:
        if not (self._dirty or (force and self._wrote)):
            return
        from lightning_kernel.storage._context import using
        from lightning_kernel.storage._persist import persist_paths

        self._dirty = False
        for source, mirror in self.mirrors.items():
            _mirror(source, mirror)
        paths = [self.folder, *self.folders.values()]
        with using(self.ctx):
            persist_paths([p for p in paths if os.path.isdir(p.local("a checkpoint folder"))])

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
            "checkpoint_dirs": [p.to_dict() for p in self.folders.values()],
            "best_checkpoint": best.to_dict() if best is not None else None,
            "best_model_score": score,
            "last_checkpoint": last.to_dict() if last is not None else None,
        }

    def _as_path(self, filepath: str) -> Any:
        """The Work's Path of a checkpoint file in one of the persisted folders, or None."""
        from lightning_kernel.storage import Path

        from ._fs import is_local

        if not filepath or not is_local(filepath):
            return None
        full = os.path.realpath(filepath.removeprefix("file://"))
        for local, path in [(self.local_folder, Path(CHECKPOINT_DIR)), *self.folders.items()]:
            if _inside(full, local):
                relative = os.path.relpath(full, local).replace(os.sep, "/")
                return Path(f"{path.lit}/{relative}", origin=self.ctx.work_name)
        return None  # elsewhere on the machine, or a remote file: not one of the Work's Paths

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


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _exists(path: str) -> bool:
    from ._fs import exists

    return exists(path)


def _checkpoints_in(folder: str) -> list[str]:
    from ._fs import list_files

    return [f for f in list_files(folder) if f.endswith(".ckpt")]


def _mirror(source: str, mirror: str) -> None:
    """Make ``mirror`` hold ``source``'s files: hard links (a copy across devices), stale ones removed."""
    import shutil

    if not os.path.isdir(source):
        return
    os.makedirs(mirror, exist_ok=True)
    wanted = {name for name in os.listdir(source) if os.path.isfile(os.path.join(source, name))}
    for name in os.listdir(mirror):
        if name not in wanted:
            os.remove(os.path.join(mirror, name))
    for name in wanted:
        src, dst = os.path.join(source, name), os.path.join(mirror, name)
        if os.path.exists(dst) and os.path.samefile(src, dst):
            continue
        tmp = f"{dst}.tmp-{os.getpid()}"
        try:
            os.link(os.path.realpath(src), tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _copy_missing(mirror: str, source: str) -> None:
    """Bring a restored mirror's files back into the folder it mirrors, where they are missing."""
    import shutil

    if not os.path.isdir(mirror):
        return
    os.makedirs(source, exist_ok=True)
    for name in os.listdir(mirror):
        target = os.path.join(source, name)
        if not os.path.exists(target):
            shutil.copyfile(os.path.join(mirror, name), target)


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
