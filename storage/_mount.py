"""``Mount``: outside data a Work sees as a folder, as Lightning App's ``CloudCompute(mounts=...)``.

Lightning App only mounted ``s3://bucket/prefix/`` folders, on its cloud. Here a Mount's source is
either such an S3 folder, which only the cloud executor can provide (under the local executor the
Work's call fails, saying so), or a local folder (``file:///data/set`` or a plain path), which any
executor on the machine that has it provides by making ``mount_path`` lead to the folder.

The worker runtime calls ``prepare_mounts`` before a Work's ``run()``: it checks every Mount against
the executor hosting the Work and links local ones into place. Validation of the Mount itself
happens when it is made, as in Lightning App, so a bad source fails when the app is built.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightning_kernel.errors import MountError

S3 = "s3://"
FILE = "file://"
CLOUD_EXECUTORS = frozenset({"ray", "cloud"})
"""Executors that provide ``s3://`` mounts to the Works they host."""


@dataclass
class Mount:
    """Data mounted as a folder at ``mount_path`` in the Work.

    ``source``: ``s3://bucket/prefix/`` (a folder: the trailing ``/`` is required; cloud executor
    only), or a local folder as ``file:///abs/path`` or a path (made absolute when the Mount is made).
    ``mount_path``: an absolute path; by default ``/data/<last folder of the source>`` for S3, the
    folder itself for a local source.
    """

    source: str = ""
    mount_path: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(
                f"Mount source must be 's3://bucket/folder/', 'file:///folder' or a folder path, got {self.source!r}"
            )
        if self.source.startswith(S3):
            if not self.source.endswith("/"):
                raise ValueError(
                    "S3 mounts must end in a trailing slash (`/`) to say that a folder is mounted; got "
                    f"{self.source!r}. Mounting a single file is not supported."
                )
            if not self.mount_path:
                self.mount_path = f"/data/{pathlib.PurePosixPath(self.source[len(S3) :]).name}"
        elif "://" in self.source and not self.source.startswith(FILE):
            raise ValueError(
                f"Unknown protocol for the Mount source {self.source!r}: it must start with {S3!r} or "
                f"{FILE!r}, or be a local folder path"
            )
        else:
            if self.source.startswith(FILE):
                self.source = FILE + os.path.abspath(self.source[len(FILE) :])
            else:
                self.source = os.path.abspath(os.path.expanduser(self.source))
            if not self.mount_path:
                self.mount_path = self.folder
        if not isinstance(self.mount_path, str) or not os.path.isabs(self.mount_path):
            raise ValueError(
                f"Mount mount_path must be an absolute path; got the relative path {self.mount_path!r}"
            )

    @property
    def protocol(self) -> str:
        """``"s3://"`` or ``"file://"`` (a plain folder path is a ``file://`` source)."""
        return S3 if self.source.startswith(S3) else FILE

    @property
    def is_local(self) -> bool:
        return self.protocol == FILE

    @property
    def folder(self) -> str:
        """The local folder of a local Mount (``""`` for an S3 one)."""
        if not self.is_local:
            return ""
        return self.source[len(FILE) :] if self.source.startswith(FILE) else self.source


def normalise_mounts(value: Any) -> Mount | list[Mount] | None:
    """``CloudCompute.mounts`` checked: None, a Mount or a list of Mounts (their dict forms, as
    ``CloudCompute.from_dict`` reads them, become Mounts); mount paths must differ."""
    if value is None:
        return None

    def one(v: Any) -> Mount:
        if isinstance(v, Mount):
            return v
        if isinstance(v, dict) and set(v) <= {"source", "mount_path"}:
            return Mount(**v)
        raise TypeError(f"CloudCompute mounts must be a Mount or a list of Mounts, got {v!r}")

    if isinstance(value, list | tuple):
        mounts = [one(v) for v in value]
        paths = [m.mount_path for m in mounts]
        twice = sorted({p for p in paths if paths.count(p) > 1})
        if twice:
            raise ValueError(f"CloudCompute mounts must each have their own mount_path; {twice} appear twice")
        return mounts
    return one(value)


def _as_list(mounts: Any) -> list[Mount]:
    got = normalise_mounts(mounts)
    if got is None:
        return []
    return got if isinstance(got, list) else [got]


def prepare_mounts(mounts: Mount | Iterable[Mount] | Any, work: str, executor: str) -> dict[str, str]:
    """Make a Work's Mounts available before its ``run()``; ``{mount_path: local folder}``.

    ``executor`` is the name of the executor hosting the Work (``local``, ``ssh``, ``ray``). An S3
    Mount under an executor that is not a cloud one raises ``MountError``: checked for every Mount
    before anything is linked. A local Mount's ``mount_path`` becomes a symlink to its folder
    (nothing to do when it is the folder); a mount path already taken by something else, or that
    cannot be created, is a ``MountError``.
    """
    todo = _as_list(mounts)
    for m in todo:
        if not m.is_local and executor not in CLOUD_EXECUTORS:
            raise MountError(
                work,
                m.source,
                m.mount_path,
                f"S3 mounts need the cloud executor, and this Work runs on the {executor!r} executor: "
                "run it with CloudCompute(executor='ray') (or `--executor ray`), or mount a local folder",
            )
    out: dict[str, str] = {}
    for m in todo:
        if not m.is_local:
            continue  # the cloud executor provides it
        folder = m.folder
        if not os.path.isdir(folder):
            raise MountError(work, m.source, m.mount_path, f"the folder {folder} does not exist on this host")
        target = m.mount_path
        if os.path.realpath(target) != os.path.realpath(folder):
            if os.path.lexists(target):
                raise MountError(
                    work, m.source, target, "that path already exists and is not the folder; pick another"
                )
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(folder, target, target_is_directory=True)
            except OSError as exc:
                raise MountError(
                    work,
                    m.source,
                    target,
                    f"cannot create it ({exc.strerror or exc}); choose a mount_path this host lets you "
                    "write, or leave mount_path out to use the folder itself",
                ) from None
        out[target] = folder
    return out
