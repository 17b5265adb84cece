"""``Drive``: a shared, named file store that Works put files into and get files from.

As in Lightning App, a Drive is scoped per component: each Work's files live under its own name,
every Work can list and get every Work's files, and a Work deletes only its own. Two kinds:

- ``Drive("lit://name")`` lives in the run's artifact store, under ``drives/<name>/<work>/...``;
- ``Drive("s3://bucket/prefix")`` is a folder of a bucket: ``s3://bucket/prefix/<work>/...``, so
  other tools read its files by name.

The component is the Work whose ``run()`` is executing (from the storage context); outside a Work,
``drive.component_name`` names it. Local files are relative to the Work's root, and the same
confinement as ``lit://`` paths applies: no ``..``, no absolute paths, no symlinks leading out.

``get(..., timeout=...)`` waits for files that another Work has not put yet by looking again with
a growing interval (at most 0.5 s): a Drive has no producer to ask, unlike a Path.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Any

from lightning_kernel.errors import ArtifactError

from ._artifacts import ArtifactStore
from ._confine import check_real, inside, normalise_rel
from ._context import StorageContext, current, current_or_none
from ._manifest import scan

DRIVE_TYPE = "__drive__"
_Pairs = list[tuple[str, str]]  # an alias: inside Drive, ``list`` is the method
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_drive_dict(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("type") == DRIVE_TYPE and isinstance(obj.get("id"), str)


class Drive:
    """A shared file store: ``put``, ``get``, ``list`` and ``delete`` files, per component."""

    __lk_state_value__ = True

    def __init__(
        self,
        id: str,
        allow_duplicates: bool = False,
        component_name: str | None = None,
        root_folder: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if id.startswith("lit://"):
            name = id[len("lit://") :].strip("/")
            if not _NAME.match(name):
                raise ArtifactError(
                    f"Drive {id!r}: a lit:// Drive is named by one word of letters, digits and ._- "
                    "(e.g. lit://checkpoints)"
                )
            self.protocol, self._name = "lit://", name
        elif id.startswith("s3://"):
            if not id[len("s3://") :].strip("/"):
                raise ArtifactError(f"Drive {id!r} names no bucket: use s3://bucket/prefix")
            self.protocol, self._name = "s3://", ""
        else:
            raise ArtifactError(f"Drive {id!r}: unknown protocol; use lit://name or s3://bucket/prefix")
        self.id = id
        self.allow_duplicates = bool(allow_duplicates)
        self.component_name = component_name
        self.root_folder = root_folder
        self._storage_options = storage_options
        self._s3: ArtifactStore | None = None

    def __repr__(self) -> str:
        return f"Drive({self.id!r}, component_name={self.component_name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            Drive,
            (self.id, self.allow_duplicates, self.component_name, self.root_folder, self._storage_options),
        )

    # -- JSON form ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": DRIVE_TYPE,
            "id": self.id,
            "allow_duplicates": self.allow_duplicates,
            "component_name": self.component_name,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Drive:
        if not is_drive_dict(d):
            raise ArtifactError(f"{d!r} is not the JSON form of a Drive (type '__drive__' and an id)")
        return cls(d["id"], bool(d.get("allow_duplicates")), d.get("component_name") or None)

    # -- where things are ---------------------------------------------------------------------------

    def _where(self, action: str) -> tuple[ArtifactStore, str, StorageContext | None]:
        """``(store, key prefix, context)`` for ``action``."""
        ctx = current_or_none()
        if self.protocol == "lit://":
            ctx = current(f"Drive({self.id!r}).{action}()")
            return ctx.store, f"drives/{self._name}", ctx
        if self._s3 is None:
            self._s3 = ArtifactStore(self.id, self._storage_options)
        return self._s3, "", ctx

    def _owner(self, action: str) -> str:
        ctx = current_or_none()
        owner = ctx.work_name if ctx is not None else self.component_name
        if not owner:
            raise ArtifactError(
                f"Drive({self.id!r}).{action}() needs to know its component: call it inside a "
                "LightningWork's run(), or set drive.component_name"
            )
        return owner

    def _root(self) -> str:
        if self.root_folder:
            return os.path.abspath(self.root_folder)
        ctx = current_or_none()
        return ctx.work_root if ctx is not None else os.getcwd()

    def _rel(self, path: str, action: str) -> str:
        rel = normalise_rel(str(path), repr(str(path)), self._owner_or_none())
        if rel == "." and action in ("put", "get", "delete"):
            raise ArtifactError(f"Drive({self.id!r}).{action}(): name a file or folder, not {str(path)!r}")
        return rel

    def _owner_or_none(self) -> str | None:
        ctx = current_or_none()
        return ctx.work_name if ctx is not None else self.component_name

    @staticmethod
    def _join(*parts: str) -> str:
        return "/".join(p for p in parts if p and p != ".")

    def _entries(self, store: ArtifactStore, base: str) -> list[tuple[str, str, str]]:
        """Every file of the Drive as ``(component, relative path, key)``."""
        out = []
        for key in store.list_named(base):
            rest = key[len(base) + 1 :] if base else key
            component, _, rel = rest.partition("/")
            if rel:
                out.append((component, rel, key))
        return out

    @staticmethod
    def _under(rel: str, path: str) -> str | None:
        """``rel``'s name below ``path`` (``"."`` when equal), or None when not under it."""
        if path == ".":
            return rel
        if rel == path:
            return "."
        if rel.startswith(path + "/"):
            return rel[len(path) + 1 :]
        return None

    # -- operations ---------------------------------------------------------------------------------

    def put(self, path: str) -> None:
        """Copy the local file or folder ``path`` (relative to the Work's root) into the Drive."""
        owner = self._owner("put")
        rel = self._rel(path, "put")
        store, base, ctx = self._where("put")
        root = self._root()
        local = inside(root, rel, repr(str(path)), owner)
        found = scan(local, os.path.realpath(root), repr(str(path)), owner)
        if found is None:
            raise FileNotFoundError(
                f"Drive({self.id!r}).put({str(path)!r}): no such file or folder in {root}"
            )
        started = time.monotonic()
        if not self.allow_duplicates:
            others = sorted(
                {c for c, r, _ in self._entries(store, base) if c != owner and self._under(r, rel)}
            )
            if others:
                raise ArtifactError(
                    f"Drive({self.id!r}).put({str(path)!r}): {rel!r} is already in the Drive, put by "
                    f"{', '.join(others)}; use another name or Drive(..., allow_duplicates=True)"
                )
        kind, files = found
        pairs = [(f.local, self._join(base, owner, rel, f.rel)) for f in files]
        store.upload_named(pairs)
        if ctx is not None:
            ctx.emit(
                "drive.put",
                {
                    "run": ctx.run_id,
                    "work": owner,
                    "drive": self.id,
                    "path": rel,
                    "kind": kind,
                    "files": len(files),
                    "bytes": sum(f.size for f in files),
                    "duration_s": round(time.monotonic() - started, 6),
                },
            )

    def list(self, path: str = ".", component_name: str | None = None) -> list[str]:
        """The files and folders directly under ``path``, from every component (or just one)."""
        rel = normalise_rel(str(path), repr(str(path)), self._owner_or_none())
        store, base, _ = self._where("list")
        names: set[str] = set()
        for component, r, _ in self._entries(store, base):
            if component_name and component != component_name:
                continue
            below = self._under(r, rel)
            if below is None:
                continue
            names.add(rel if below == "." else self._join(rel, below.split("/")[0]))
        return sorted(names)

    def get(
        self,
        path: str,
        component_name: str | None = None,
        timeout: float | None = None,
        overwrite: bool = False,
    ) -> None:
        """Copy ``path`` from the Drive into the Work's root.

        ``component_name`` picks whose files (by default this component's, else the first that has
        them); ``timeout`` waits that many seconds for the files to appear; ``overwrite`` replaces
        local files (else ``FileExistsError`` when ``path`` exists locally).
        """
        owner = self._owner_or_none()
        rel = self._rel(path, "get")
        store, base, ctx = self._where("get")
        root = self._root()
        local = inside(root, rel, repr(str(path)), owner)
        if os.path.exists(local) and not overwrite:
            raise FileExistsError(
                f"Drive({self.id!r}).get({str(path)!r}): {local} exists; pass overwrite=True to replace it"
            )
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        delay = 0.02

        def put_here(kind: str, data: dict[str, Any]) -> bool:
            return kind == "drive.put" and data.get("drive") == self.id

        while True:
            # Watching before looking: a put that lands after the look wakes the wait.
            watcher = ctx.watch if ctx is not None and deadline is not None else None
            with watcher(put_here) if watcher is not None else contextlib.nullcontext(None) as put:
                matches = self._matches(store, base, rel, component_name, owner)
                if matches or deadline is None or time.monotonic() >= deadline:
                    break
                remaining = max(0.0, deadline - time.monotonic())
                if put is not None:
                    put.wait(remaining)
                else:  # no event log (storage used as a library): look again a little later
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 0.5)
        if not matches:
            whose = f" from {component_name}" if component_name else ""
            waited = f" after waiting {timeout} s" if timeout else ""
            raise FileNotFoundError(f"Drive({self.id!r}) has no {rel!r}{whose}{waited}")
        real_root = os.path.realpath(root)
        pairs = []
        for below, key in matches:
            target = local if below == "." else os.path.join(local, *below.split("/"))
            check_real(real_root, os.path.dirname(target), repr(str(path)), owner)
            pairs.append((key, target))
        store.download_named(pairs)
        if ctx is not None:
            ctx.emit(
                "drive.get",
                {
                    "run": ctx.run_id,
                    "work": ctx.work_name,
                    "drive": self.id,
                    "path": rel,
                    "files": len(pairs),
                    "duration_s": round(time.monotonic() - started, 6),
                },
            )

    def _matches(
        self, store: ArtifactStore, base: str, rel: str, component_name: str | None, owner: str | None
    ) -> _Pairs:
        by_component: dict[str, list[tuple[str, str]]] = {}
        for component, r, key in self._entries(store, base):
            below = self._under(r, rel)
            if below is not None:
                by_component.setdefault(component, []).append((below, key))
        if component_name:
            return by_component.get(component_name, [])
        if owner in by_component:
            return by_component[owner]
        return by_component[min(by_component)] if by_component else []

    def delete(self, path: str) -> None:
        """Delete this component's ``path`` (a file or folder) from the Drive; others' files stay."""
        owner = self._owner("delete")
        rel = self._rel(path, "delete")
        store, base, ctx = self._where("delete")
        keys = [k for c, r, k in self._entries(store, base) if c == owner and self._under(r, rel) is not None]
        if not keys:
            raise FileNotFoundError(
                f"Drive({self.id!r}).delete({str(path)!r}): {owner} has put no such file or folder "
                "(a component deletes only its own files)"
            )
        store.delete_named(keys)
        if ctx is not None:
            ctx.emit(
                "drive.deleted",
                {"run": ctx.run_id, "work": owner, "drive": self.id, "path": rel, "files": len(keys)},
            )
