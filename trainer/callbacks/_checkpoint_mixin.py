"""How ``ModelCheckpoint`` names, writes, links and removes its files (PL's methods of these names).

A mixin of ``ModelCheckpoint``: the top-k and scheduling logic stays there, what touches file names
and the filesystem is here. Files go through fsspec, so a ``dirpath`` may be any fsspec URL.
"""

import os
import warnings
from typing import Any

import torch

from .._fs import filesystem
from . import _checkpoint_files as files
from ._ranks import broadcast

Trainer = Any


class CheckpointFiles:
    """File names and file operations of a ``ModelCheckpoint``."""

    CHECKPOINT_JOIN_CHAR: str
    CHECKPOINT_EQUALS_CHAR: str
    FILE_EXTENSION: str
    STARTING_VERSION: int
    dirpath: str | None
    filename: str | None
    auto_insert_metric_name: bool
    save_top_k: int
    save_weights_only: bool
    best_k_models: dict[str, torch.Tensor]
    _enable_version_counter: bool
    _last_global_step_saved: int
    _last_checkpoint_saved: str

    # -- names --------------------------------------------------------------------------------------------
    def _format_checkpoint_name(
        self,
        filename: str | None,
        metrics: dict[str, Any],
        prefix: str = "",
        auto_insert_metric_name: bool = True,
    ) -> str:
        """The file name (no folder, no extension) for ``metrics``, with this callback's
        ``CHECKPOINT_JOIN_CHAR`` and ``CHECKPOINT_EQUALS_CHAR`` (a subclass may change them)."""
        return files.format_checkpoint_filename(
            filename,
            metrics,
            prefix,
            auto_insert_metric_name,
            self.CHECKPOINT_JOIN_CHAR,
            self.CHECKPOINT_EQUALS_CHAR,
        )

    def format_checkpoint_name(
        self, metrics: dict[str, Any], filename: str | None = None, ver: int | None = None, prefix: str = ""
    ) -> str:
        """The path a checkpoint with ``metrics`` gets: ``<dirpath>/epoch=3-val_loss=0.12.ckpt``."""
        name = self._format_checkpoint_name(
            filename or self.filename, metrics, prefix, auto_insert_metric_name=self.auto_insert_metric_name
        )
        if ver is not None:
            name = self.CHECKPOINT_JOIN_CHAR.join((name, f"v{ver}"))
        name = f"{name}{self.FILE_EXTENSION}"
        return os.path.join(self.dirpath, name) if self.dirpath else name

    def _get_metric_interpolated_filepath_name(
        self, candidates: dict[str, torch.Tensor], trainer: Trainer, del_filepath: str | None = None
    ) -> str:
        filepath = self.format_checkpoint_name(candidates)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while self.file_exists(filepath, trainer) and filepath != del_filepath:
                filepath = self.format_checkpoint_name(candidates, ver=version)
                version += 1
        return filepath

    def _resolve_dirpath(self, trainer: Trainer) -> str:
        if self.dirpath is not None:
            return self.dirpath
        loggers = list(trainer.loggers or [])
        if loggers:
            first = loggers[0]
            save_dir = first.save_dir if first.save_dir is not None else trainer.default_root_dir
            version = first.version if isinstance(first.version, str) else f"version_{first.version}"
            return os.path.join(str(save_dir), str(first.name), version, "checkpoints")
        return os.path.join(str(trainer.default_root_dir), "checkpoints")

    def _warn_if_dir_not_empty(self) -> None:
        if self.save_top_k != 0 and self.dirpath is not None and files.list_dir(self.dirpath):
            warnings.warn(f"Checkpoint directory {self.dirpath} exists and is not empty.", stacklevel=2)

    # -- files --------------------------------------------------------------------------------------------
    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        trainer.save_checkpoint(filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        for logger in trainer.loggers or []:
            logger.after_save_checkpoint(self)

    @staticmethod
    def _link_checkpoint(trainer: Trainer, filepath: str, linkpath: str) -> None:
        """Point ``linkpath`` at ``filepath`` (on rank zero; every rank waits); PL's method of this name."""
        if trainer.is_global_zero:
            files.link(filepath, linkpath)
        trainer.strategy.barrier()

    def file_exists(self, filepath: str, trainer: Trainer) -> bool:
        """Whether ``filepath`` exists, as rank zero sees it."""
        return bool(broadcast(trainer, files.exists(filepath)))

    def _should_remove_checkpoint(self, trainer: Trainer, previous: str, current: str) -> bool:
        assert self.dirpath is not None
        resumed_from = getattr(trainer, "ckpt_path", None)
        return files.may_remove(
            previous, current, self.dirpath, None if resumed_from is None else str(resumed_from)
        )

    def _remove_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        if trainer.is_global_zero:
            files.remove(filepath)

    def to_yaml(self, filepath: str | os.PathLike[str] | None = None) -> None:
        """Write ``best_k_models`` (path -> score) as YAML, by default to ``<dirpath>/best_k_models.yaml``."""
        import yaml

        assert self.dirpath is not None
        scores = {path: float(score) for path, score in self.best_k_models.items()}
        target = (
            os.fspath(filepath) if filepath is not None else os.path.join(self.dirpath, "best_k_models.yaml")
        )
        fs, inner = filesystem(target)
        with fs.open(inner, "w") as f:
            yaml.safe_dump(scores, f)
