"""Manifests: what files a persisted Path held, by relative name, with hashes, sizes and modes.

A manifest is a JSON blob in the content-addressed store, so its ref names one exact snapshot::

    {"version": 1, "path": "lit://outputs/ckpt", "origin": "root.train", "kind": "dir",
     "files": {"epoch=1.ckpt": {"sha256": "...", "size": 1024, "mode": 420}}}

A file Path has ``kind`` "file" and one entry named ``"."``. Scanning a folder follows symlinks
that stay inside the Work's root and refuses those that leave it, and skips the ``.lk-partial-*``
files a download that was killed half-way leaves behind.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Any

from ._artifacts import _PARTIAL, ArtifactStore
from ._confine import check_real, normalise_rel

SAMPLE = 16
"""Files listed by name in an event body; the manifest (by ref) lists them all."""


@dataclass(frozen=True)
class LocalFile:
    rel: str
    """Name inside the Path (``"."`` for a file Path)."""
    local: str
    size: int
    mode: int


def is_partial_download(name: str) -> bool:
    """A file that a download is writing (``ArtifactStore`` renames it into place when whole): one
    left by a killed download holds half an object and is never part of a Path."""
    return name.startswith(_PARTIAL)


def scan(local: str, real_root: str, shown: str, work: str) -> tuple[str, list[LocalFile]] | None:
    """``(kind, files)`` of the file or folder at ``local``; None when nothing is there."""
    check_real(real_root, local, shown, work)
    if not os.path.exists(local):
        return None
    if not os.path.isdir(local):
        st = os.stat(local)
        return "file", [LocalFile(".", local, st.st_size, stat.S_IMODE(st.st_mode))]
    files: list[LocalFile] = []
    for dirpath, dirnames, filenames in os.walk(local, followlinks=True):
        check_real(real_root, dirpath, shown, work)
        here = os.path.realpath(dirpath)
        # A symlink to a folder that holds it would make the walk endless; an alias of a sibling
        # folder is fine (its files are listed twice and stored once).
        dirnames[:] = sorted(
            d for d in dirnames if not _is_ancestor(os.path.realpath(os.path.join(dirpath, d)), here)
        )
        for name in sorted(filenames):
            if is_partial_download(name):
                continue
            full = os.path.join(dirpath, name)
            check_real(real_root, full, shown, work)
            try:
                st = os.stat(full)
            except FileNotFoundError:  # a dangling symlink inside the root holds no data
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            files.append(LocalFile(rel, full, st.st_size, stat.S_IMODE(st.st_mode)))
    return "dir", files


def _is_ancestor(folder: str, of: str) -> bool:
    return of == folder or of.startswith(folder.rstrip(os.sep) + os.sep)


def build(lit: str, origin: str, kind: str, files: list[LocalFile], refs: list[str]) -> dict[str, Any]:
    entries = {
        f.rel: {"sha256": ref, "size": f.size, "mode": f.mode} for f, ref in zip(files, refs, strict=True)
    }
    return {"version": 1, "path": lit, "origin": origin, "kind": kind, "files": entries}


def save(store: ArtifactStore, manifest: dict[str, Any]) -> str:
    return store.put_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def load(store: ArtifactStore, ref: str) -> dict[str, Any]:
    return dict(json.loads(store.get_bytes(ref)))


def select(manifest: dict[str, Any], lit: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """``(kind, entries)`` of ``lit`` within ``manifest`` (of ``lit`` or of a folder holding it)."""
    base = normalise_rel(str(manifest["path"])[len("lit://") :], manifest["path"], None)
    want = normalise_rel(lit[len("lit://") :], lit, None)
    files: dict[str, dict[str, Any]] = manifest["files"]
    if want == base:
        return str(manifest["kind"]), dict(files)
    if manifest["kind"] != "dir":
        return None
    sub = want if base == "." else posixpath.relpath(want, base)
    if sub.startswith(".."):
        return None
    if sub in files:
        return "file", {".": files[sub]}
    inner = {name[len(sub) + 1 :]: e for name, e in files.items() if name.startswith(sub + "/")}
    return ("dir", inner) if inner else None


def sample(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": n, "size": e["size"], "sha256": e["sha256"]} for n, e in sorted(entries.items())[:SAMPLE]
    ]
