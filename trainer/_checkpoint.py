"""Checkpoint files: PyTorch Lightning's dict layout, written atomically through fsspec.

A checkpoint is a plain dict (as in nanoGPT), the same keys PL 2.x writes::

    epoch, global_step, pytorch-lightning_version, state_dict, loops, callbacks,
    optimizer_states, lr_schedulers, hyper_parameters (+ hparams_name), rng_states

``rng_states`` is ours: the random generators at the moment of saving, so that a resumed run draws
the same shuffles and dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from . import _fs
from ._errors import CheckpointError

CHECKPOINT_FORMAT_KEYS = ("state_dict",)


def atomic_save(checkpoint: dict[str, Any], path: str, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``checkpoint`` to ``path`` (local or any fsspec URL) so that no reader sees half a file."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    _fs.write_bytes_atomic(str(path), buffer.getvalue(), storage_options)


def load_checkpoint(
    path: str,
    map_location: Any = None,
    storage_options: dict[str, Any] | None = None,
    weights_only: bool | None = None,
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save`; ``FileNotFoundError`` if there is none.

    ``weights_only`` is ``torch.load``'s: None takes torch's default (True since torch 2.6), which the
    Trainer's own checkpoints satisfy (plain tensors, numbers, strings, lists and dicts), as PL's do.

    Raises :class:`CheckpointError` for a file that is not a torch checkpoint (truncated, corrupt,
    another format) or whose content is not a checkpoint dict.
    """
    data = _fs.read_bytes(str(path), storage_options)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # the unpickler raises about anything on garbage (OverflowError, KeyError...)
        raise CheckpointError(
            str(path),
            f"cannot be read as a torch checkpoint ({type(exc).__name__}: {exc}); the file is truncated, "
            "corrupt or in another format. Point to a file written by Trainer.save_checkpoint",
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            str(path),
            f"holds a {type(checkpoint).__name__}, not a checkpoint dict; it was not written by "
            "Trainer.save_checkpoint (to load bare weights use module.load_state_dict(torch.load(path)))",
        )
    return checkpoint


def require_trainer_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Reject a dict that lacks the keys every Trainer checkpoint has."""
    missing = [k for k in CHECKPOINT_FORMAT_KEYS if k not in checkpoint]
    if missing:
        keys = sorted(str(k) for k in checkpoint)[:10]
        raise CheckpointError(
            path,
            f"has no {missing} key: it was not written by Trainer.save_checkpoint (its keys: {keys}). "
            "For a bare state dict use module.load_state_dict(torch.load(path))",
        )
