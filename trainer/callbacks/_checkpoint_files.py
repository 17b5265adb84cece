"""Checkpoint file names and file operations for ``ModelCheckpoint``, on any fsspec URL.

Kept apart from the callback's bookkeeping (top k, triggers) because names and files are what users
and other tools see: ``epoch=3-val_loss=0.12.ckpt``, ``last-v1.ckpt``, a ``last.ckpt`` link.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import torch

from .. import _fs
from .._fs import filesystem

JOIN_CHAR = "-"
EQUALS_CHAR = "="


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local disk (a plain path or ``file://``)."""
    return _fs.is_local(path)


def format_checkpoint_filename(
    filename: str | None,
    metrics: dict[str, Any],
    prefix: str = "",
    auto_insert_metric_name: bool = True,
    join_char: str = JOIN_CHAR,
    equals_char: str = EQUALS_CHAR,
) -> str:
    """Fill a template: ``"{epoch}-{val_loss:.2f}"`` -> ``"epoch=3-val_loss=0.12"``.

    A key the metrics lack is filled with 0, as PyTorch Lightning does, so a typo shows in the name
    rather than failing the save.
    """
    if not filename:
        filename = "{epoch}" + join_char + "{step}"
    metrics = dict(metrics)
    # longest first, so "{epoch_test}" is not half-replaced as "{epoch}"
    groups = sorted(re.findall(r"(\{.*?)[:\}]", filename), key=len, reverse=True)
    for group in groups:
        name = group[1:]
        if auto_insert_metric_name:
            filename = filename.replace(group, name + equals_char + "{" + name)
        # index by key so that names with dots ("val.loss") are not read as attributes
        filename = filename.replace(group, f"{{0[{name}]")
        if name not in metrics:
            metrics[name] = torch.tensor(0)
    filename = filename.format(metrics)
    if prefix:
        filename = join_char.join([prefix, filename])
    return filename


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return bool(fs.exists(inner))


def link(filepath: str, linkpath: str) -> None:
    """Make ``linkpath`` point at ``filepath``: a relative symlink on disk, a copy on object stores."""
    if is_local(linkpath):
        link_inner = filesystem(linkpath)[1]
        target = filesystem(filepath)[1]
        if os.path.isdir(link_inner) and not os.path.islink(link_inner):
            shutil.rmtree(link_inner)  # a folder in the way (a sharded checkpoint's) is replaced too
        elif os.path.lexists(link_inner):
            os.remove(link_inner)
        try:
            os.symlink(os.path.relpath(target, os.path.dirname(os.path.abspath(link_inner))), link_inner)
        except OSError:
            # some filesystems refuse symlinks: a copy still gives a usable last.ckpt
            if os.path.isdir(target):
                shutil.copytree(target, link_inner)
            else:
                shutil.copy(target, link_inner)
        return
    fs, inner = filesystem(linkpath)
    fs.copy(filesystem(filepath)[1], inner)


def remove(filepath: str) -> None:
    """Delete ``filepath`` (a link itself, not its target) if it exists."""
    fs, inner = filesystem(filepath)
    if is_local(filepath) and os.path.islink(inner):
        os.remove(inner)
    elif fs.exists(inner):
        fs.rm(inner)


def may_remove(previous: str, current: str, dirpath: str, resumed_from: str | None) -> bool:
    """Whether replacing ``previous`` by ``current`` may delete ``previous``.

    Never the file just written, the checkpoint the run resumed from, or a local file outside
    ``dirpath`` (one the user placed there by hand before pointing ``dirpath`` elsewhere).
    """
    if previous == current:
        return False
    if not is_local(previous):
        return True
    previous_abs = os.path.abspath(filesystem(previous)[1])
    resumed_abs = None
    if resumed_from is not None and is_local(resumed_from):
        resumed_abs = os.path.abspath(filesystem(resumed_from)[1])
    if resumed_abs == previous_abs:
        return False
    root = os.path.abspath(filesystem(dirpath)[1])
    return os.path.commonpath([root, previous_abs]) == root


def list_dir(dirpath: str) -> list[str]:
    """The entries of ``dirpath``, or ``[]`` when it does not exist."""
    fs, inner = filesystem(dirpath)
    return list(fs.ls(inner)) if fs.isdir(inner) else []
