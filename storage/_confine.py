"""Keeping ``lit://`` paths inside their Work's root.

A lit path names files relative to a Work's root folder. Three ways out are refused: an absolute
path, ``..`` parts that climb above the root, and symlinks whose target lies outside the root. The
first two are caught from the string alone (at creation); symlinks only on disk, so every upload
and download checks again with ``os.path.realpath``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath

from lightning_kernel.errors import PathEscapeError

LIT = "lit://"


def is_lit_str(value: object) -> bool:
    """Whether ``value`` is a string that names a Lightning path (``lit://...``)."""
    return isinstance(value, str) and value.startswith(LIT)


def normalise_rel(rel: str, shown: str, work: str | None) -> str:
    """``rel`` (a path relative to a Work's root) without ``.``/``..`` parts; refuses escapes."""
    who = f"Work {work!r}" if work else "the Work"
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise PathEscapeError(
            f"{shown} is absolute: a lit:// path is relative to the root folder of {who} "
            f"(write lit://outputs/..., not lit:///abs/...)"
        )
    if "\0" in rel:
        raise PathEscapeError(f"{shown} contains a NUL character")
    norm = posixpath.normpath(rel) if rel else "."
    if norm == ".." or norm.startswith("../"):
        raise PathEscapeError(
            f"{shown} climbs out of the root folder of {who} with '..'; a lit:// path must stay inside it"
        )
    return norm


def lit_of(rel: str) -> str:
    return LIT + rel


def lit_ancestors(lit_path: str) -> list[str]:
    """``lit://a/b`` -> ``[lit://a/b, lit://a, lit://.]``: where a persisted folder may hold it."""
    rel = normalise_rel(lit_path[len(LIT) :] if is_lit_str(lit_path) else lit_path, lit_path, None)
    out = [lit_of(rel)]
    while rel != ".":
        rel = posixpath.dirname(rel) or "."
        out.append(lit_of(rel))
    return out


def encode_lit(lit_path: str) -> str:
    """A store-key-safe, reversible name for a normalised lit path (hashed when very long)."""
    rel = normalise_rel(lit_path[len(LIT) :] if is_lit_str(lit_path) else lit_path, lit_path, None)
    enc = base64.urlsafe_b64encode(rel.encode()).decode().rstrip("=")
    if len(enc) > 180:  # keep under file-name limits of local stores
        return "h-" + hashlib.sha256(rel.encode()).hexdigest()
    return "b-" + enc


def inside(work_root: str, rel: str, shown: str, work: str | None) -> str:
    """The absolute local path of ``rel`` under ``work_root``, after checking symlinks on the way.

    The check resolves every existing part of the path, so a symlink anywhere (a folder linked to
    ``/etc``, a file linked to ``~/.ssh/id_rsa``) that leads out of the root is refused.
    """
    norm = normalise_rel(rel, shown, work)
    root = os.path.realpath(work_root)
    local = os.path.join(work_root, norm) if norm != "." else work_root
    check_real(root, local, shown, work)
    return local


def check_real(real_root: str, local: str, shown: str, work: str | None) -> None:
    """Refuse ``local`` when its real location (symlinks resolved) is not under ``real_root``."""
    real = os.path.realpath(local)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        who = f"Work {work!r}" if work else "the Work"
        raise PathEscapeError(
            f"{shown} leads to {real} through a symlink, outside the root folder {real_root} of {who}; "
            "symlinks in lit:// paths must point inside the Work's root"
        )
