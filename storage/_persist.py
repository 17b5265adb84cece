"""What the worker runtime calls around a Work's ``run()``: persist, restore and transfer Paths.

- ``persist_paths`` when the Work finishes, fails or is interrupted: upload its own Paths' files to
  the content-addressed store (files already there are not sent again), save a manifest, point
  ``paths/<run>/<work>/<path>`` at it, publish ``path.persisted``.
- ``restore_paths`` before a resumed Work's ``run()``: bring its own persisted files back into its
  root (``path.restored``). Files already on disk are kept: on the same machine they are at least
  as new as the persisted copy (a killed worker never persisted its last writes).
- ``transfer_inputs`` before ``run()``: Paths of other Works found in the arguments or attributes
  are downloaded from their origin's latest manifest, replacing local copies (``path.transferred``).

Each function publishes one event per Path through the context and returns the same bodies, so the
runtime can also attach them to its own events (it must not publish them a second time).
Downloads are parallel and atomic per file (a temporary file beside the target, then a rename).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._artifacts import file_digest
from ._confine import check_real, inside
from ._context import StorageContext, current, pointer_key
from ._manifest import LocalFile, build, load, sample, save, scan, select
from ._path import Path, is_path_dict

ASK_FIRST_SIZE = 4 << 20
"""New files smaller than this go to a remote store without asking whether it has them: the question
costs a round trip, about what sending a few MB costs, and the answer is almost always no (files
unchanged since the last persist are known from its manifest and are not sent at all)."""


UPLOADS = 32
"""Files uploaded at once (each upload of a big file also sends its parts in parallel)."""


def find_paths(*values: Any) -> list[Path]:
    """Every Path inside ``values`` (lists, tuples, sets and dict values are searched), deduplicated."""
    out: dict[tuple[str | None, str], Path] = {}

    def walk(v: Any) -> Iterator[Path]:
        if isinstance(v, Path):
            yield v
        elif is_path_dict(v):
            yield Path.from_dict(v)
        elif isinstance(v, dict):
            for x in v.values():
                yield from walk(x)
        elif isinstance(v, list | tuple | set | frozenset):
            for x in v:
                yield from walk(x)

    for value in values:
        for p in walk(value):
            out.setdefault((p._origin, p.lit), p)
    return list(out.values())


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for p in paths:
        seen.setdefault(p.lit, p)
    return list(seen.values())


def persist_paths(paths: list[Path]) -> list[dict[str, Any]]:
    """Upload the current Work's own Paths (origin unset or this Work) that exist locally.

    Every Path is checked for escapes before anything is uploaded. Paths with nothing on disk are
    skipped and keep their previous persisted copy (a worker stopped before restoring must not
    erase its checkpoints). One ``path.persisted`` body per persisted Path.
    """
    ctx = current("persist_paths()")
    own = _unique(p for p in paths if p._origin in (None, ctx.work_name))
    real_root = os.path.realpath(ctx.work_root)
    started = time.monotonic()
    scanned: list[tuple[Path, str, list[LocalFile]]] = []
    for p in own:
        local = inside(ctx.work_root, p.as_posix(), repr(p.lit), ctx.work_name)
        found = scan(local, real_root, repr(p.lit), ctx.work_name)
        if found is not None:
            scanned.append((p, found[0], found[1]))
    every = [f for _, _, files in scanned for f in files]
    known = _previous_refs(ctx, [p for p, _, _ in scanned])
    digests, uploaded = _hash_and_upload(ctx, every, known)
    records: list[dict[str, Any]] = []
    at = 0
    for p, kind, files in scanned:
        refs = [ref for ref, _ in digests[at : at + len(files)]]
        at += len(files)
        manifest = build(p.lit, ctx.work_name, kind, files, refs)
        sent = []
        for f, r in zip(files, refs, strict=True):
            if r in uploaded:  # a blob counts once, for the first file that holds it
                uploaded.discard(r)
                sent.append((f, r))
        record = {
            "run": ctx.run_id,
            "work": ctx.work_name,
            "path": p.lit,
            "origin": ctx.work_name,
            "kind": kind,
            "manifest": save(ctx.store, manifest),
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "uploaded_files": len(sent),
            "uploaded_bytes": sum(f.size for f, _ in sent),
            "duration_s": round(time.monotonic() - started, 6),
            "sample": sample(manifest["files"]),
        }
        ctx.store.write_json(pointer_key(ctx.run_id, ctx.work_name, p.lit), record)
        ctx.emit("path.persisted", record)
        records.append(record)
    return records


def _hash_and_upload(
    ctx: StorageContext, files: list[LocalFile], known: set[str]
) -> tuple[list[tuple[str, int]], set[str]]:
    """Hash every file and upload those the store lacks; ``(digests in order, refs uploaded)``.

    A pipeline: each file goes up as soon as it is hashed, so hashing (about a tenth of an upload
    to a fast store) hides behind the network. Tried first: hashing everything, then one batch
    upload (hashing shows in full); uploading in groups while later groups hash (the wait for the
    slowest file of each group cost more than the hashing it hid).
    """
    store = ctx.store

    def send(f: LocalFile, ref: str) -> list[str]:
        return store.upload_blobs([(f.local, ref)], known=known, check_min_size=ASK_FIRST_SIZE)

    with ThreadPoolExecutor(max_workers=4) as hashers, ThreadPoolExecutor(max_workers=UPLOADS) as senders:
        hashing = [hashers.submit(file_digest, f.local) for f in files]
        sending = [senders.submit(send, f, h.result()[0]) for f, h in zip(files, hashing, strict=True)]
        uploaded = {ref for s in sending for ref in s.result()}
        return [h.result() for h in hashing], uploaded


def _previous_refs(ctx: StorageContext, paths: list[Path]) -> set[str]:
    """The objects that this Work's previous manifests of ``paths`` name: stored already."""
    refs: set[str] = set()
    for p in paths:
        record = ctx.store.read_json(pointer_key(ctx.run_id, ctx.work_name, p.lit))
        if record is not None:
            refs.update(e["sha256"] for e in load(ctx.store, record["manifest"])["files"].values())
    return refs


def restore_paths(paths: list[Path]) -> list[dict[str, Any]]:
    """Bring the current Work's own persisted Paths back into its root, keeping files on disk."""
    ctx = current("restore_paths()")
    own = _unique(p for p in paths if p._origin in (None, ctx.work_name))
    out = [fetch(ctx, p, overwrite=False, kind="path.restored", required=False) for p in own]
    return [r for r in out if r is not None]


def transfer_inputs(paths: list[Path], overwrite: bool = True) -> list[dict[str, Any]]:
    """Download other Works' Paths (those that exist at their origin) into the current Work's root."""
    ctx = current("transfer_inputs()")
    inputs = [p for p in find_paths(paths) if p._origin and p._origin != ctx.work_name]
    out = [fetch(ctx, p, overwrite=overwrite, kind="path.transferred", required=False) for p in inputs]
    return [r for r in out if r is not None]


def remote_entries(
    ctx: StorageContext, path: Path
) -> tuple[dict[str, Any], str, dict[str, dict[str, Any]]] | None:
    """``(record, kind, entries)`` of what the origin persisted at ``path``; None when nothing."""
    origin = path._origin or ctx.work_name
    record = ctx.wait_for(origin, path.lit, None)
    if record is None:
        return None
    chosen = select(load(ctx.store, record["manifest"]), path.lit)
    return None if chosen is None else (record, chosen[0], chosen[1])


def fetch(
    ctx: StorageContext, path: Path, overwrite: bool, kind: str, required: bool, force: bool = False
) -> dict[str, Any] | None:
    """Download ``path``'s files from its origin's latest manifest into ``ctx``'s root.

    ``overwrite``: replace local files that differ (else keep every file already on disk).
    ``required``: ``FileNotFoundError`` when the origin has nothing, else None.
    ``force``: download every file, even those identical on disk (``Path.get`` always transfers).
    """
    started = time.monotonic()
    origin = path._origin or ctx.work_name
    shown = repr(path.lit)
    local = inside(ctx.work_root, path.as_posix(), shown, ctx.work_name)
    found = remote_entries(ctx, path)
    if found is None:
        if required:
            raise FileNotFoundError(
                f"{path.lit} does not exist at its origin {origin!r} (run {ctx.run_id}): that Work has "
                "persisted no such file or folder; check exists_remote() first"
            )
        return None
    record, what, entries = found
    real_root = os.path.realpath(ctx.work_root)
    if what == "file":
        targets = {".": local}
    else:
        if overwrite and os.path.isfile(local):
            os.unlink(local)  # a file where the origin has a folder
        targets = {name: os.path.join(local, *name.split("/")) for name in entries}
    todo: list[tuple[str, str, dict[str, Any]]] = []
    for name, target in targets.items():
        check_real(real_root, os.path.dirname(target) or ".", shown, ctx.work_name)
        entry = entries[name]
        if os.path.lexists(target):
            if not overwrite or (not force and _same(target, entry)):
                continue
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)  # a folder where the origin has a file
        todo.append((name, target, entry))
    if what == "dir":
        os.makedirs(local, exist_ok=True)
    ctx.store.get_files([(e["sha256"], target) for _, target, e in todo])
    for _, target, e in todo:
        os.chmod(target, e["mode"])
    body = {
        "run": ctx.run_id,
        "work": ctx.work_name,
        "path": path.lit,
        "origin": origin,
        "kind": what,
        "manifest": record["manifest"],
        "files": len(entries),
        "bytes": sum(e["size"] for e in entries.values()),
        "downloaded_files": len(todo),
        "downloaded_bytes": sum(e["size"] for _, _, e in todo),
        "duration_s": round(time.monotonic() - started, 6),
        "sample": sample(entries),
    }
    ctx.emit(kind, body)
    return body


def _same(target: str, entry: dict[str, Any]) -> bool:
    """Whether the local file already holds the entry's bytes (size first, then the hash)."""
    if not os.path.isfile(target) or os.path.getsize(target) != entry["size"]:
        return False
    return file_digest(target)[0] == entry["sha256"]
