"""The Trainer's only door to fsspec: local paths and URLs (``s3://``, ``memory://``) alike.

Writes are atomic: a reader sees the old file or the new one, never half of one. Local files and
other filesystems are written under a temporary name in the same folder and then renamed; object
stores (``s3://``, ``gs://``) publish a single ``put`` atomically already, so they get one write.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "memory"})


def filesystem(path: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``path`` and the path as that filesystem spells it."""
    fs, fs_path = fsspec.core.url_to_fs(str(path), **(storage_options or {}))
    return fs, fs_path


def is_local(path: str) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts with ``/`` for URLs and with ``os.path.join`` for local paths."""
    if is_local(base):
        return os.path.join(base, *parts)
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def write_bytes_atomic(path: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    fs, fs_path = filesystem(path, storage_options)
    parent = fs._parent(fs_path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if _ATOMIC_PUT_PROTOCOLS.intersection(protocols):
        fs.pipe_file(fs_path, data)
        return
    tmp = f"{fs_path}.tmp-{uuid.uuid4().hex}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        if isinstance(fs, LocalFileSystem):
            # os.replace is the one rename that atomically overwrites an existing file.
            os.replace(tmp, fs_path)
        else:
            fs.mv(tmp, fs_path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def read_bytes(path: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, fs_path = filesystem(path, storage_options)
    if not fs.exists(fs_path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with fs.open(fs_path, "rb") as f:
        data: bytes = f.read()
    return data


def exists(path: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, fs_path = filesystem(path, storage_options)
    return bool(fs.exists(fs_path))


def list_files(folder: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The files directly inside ``folder``, as full paths/URLs; an empty list if it does not exist."""
    fs, fs_path = filesystem(folder, storage_options)
    if not fs.exists(fs_path):
        return []
    names = [str(p) for p in fs.ls(fs_path, detail=False)]
    return [join(folder, os.path.basename(n.rstrip("/"))) for n in names]


def modified(path: str, storage_options: dict[str, Any] | None = None) -> float:
    fs, fs_path = filesystem(path, storage_options)
    try:
        return float(fs.modified(fs_path).timestamp())
    except (NotImplementedError, AttributeError):
        return 0.0


def makedirs(path: str, storage_options: dict[str, Any] | None = None) -> None:
    fs, fs_path = filesystem(path, storage_options)
    fs.makedirs(fs_path, exist_ok=True)
