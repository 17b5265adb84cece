"""``OnExceptionCheckpoint``: save a checkpoint when the run fails or is interrupted.

Its file is one of the candidates of ``ckpt_path="last"``, and a ``fit`` without ``ckpt_path`` on a
Trainer that has this callback resumes from it (PL's fault-tolerant default).
"""

import os
from typing import Any

from ._model_checkpoint import Checkpoint

Trainer = Any
LightningModule = Any


class OnExceptionCheckpoint(Checkpoint):
    """Write ``<dirpath>/<filename>.ckpt`` from ``on_exception``."""

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "on_exception") -> None:
        super().__init__()
        if not filename:
            raise ValueError("The filename cannot be empty")
        self.dirpath = os.fspath(dirpath)
        self.filename = filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        trainer.strategy.barrier("OnExceptionCheckpoint.teardown")
        if trainer.is_global_zero and os.path.isfile(self.ckpt_path):
            # a run that ended well leaves no crash checkpoint to resume from by mistake
            os.remove(self.ckpt_path)
