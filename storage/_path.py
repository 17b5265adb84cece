"""``Path``: a ``pathlib.Path`` for ``lit://`` paths, which knows the Work its files come from.

``Path("lit://outputs/ckpt")`` is the relative path ``outputs/ckpt``: a Work's current folder is its
root, so ``os``, ``os.path`` and ``pathlib`` reach the files with no translation. What it adds is
the origin (the Work whose files these are), a JSON form for state and events, and the transfer
calls ``get``, ``exists_local`` and ``exists_remote``.

Like Lightning App's Path it subclasses the concrete ``PosixPath``: ``pathlib.Path`` itself cannot
be subclassed before Python 3.12. Paths derived from a Path (``p / "x"``, ``p.parent``,
``p.iterdir()``) keep its origin: through ``with_segments`` on Python 3.12+, through the overrides
below on older versions. ``absolute()`` and ``resolve()`` give plain ``pathlib`` paths, since an
absolute path names a place on this machine only.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Generator, Iterator
from typing import Any

from lightning_kernel.errors import PathEscapeError

from ._confine import LIT, inside, is_lit_str, lit_of, normalise_rel
from ._context import current, current_or_none

PATH_TYPE = "__path__"


def is_path_dict(obj: object) -> bool:
    """Whether ``obj`` is the JSON form of a Path (``{"type": "__path__", "path": "lit://..."}``)."""
    return isinstance(obj, dict) and obj.get("type") == PATH_TYPE and is_lit_str(obj.get("path"))


def _strip(args: tuple[Any, ...]) -> tuple[Any, ...]:
    if args and is_lit_str(args[0]):
        rest = args[0][len(LIT) :]
        return (rest or ".", *args[1:])
    return args


def _origin_of(args: tuple[Any, ...]) -> str | None:
    return args[0]._origin if args and isinstance(args[0], Path) else None


class Path(pathlib.PosixPath):
    """A file or folder of a LightningWork, by a ``lit://`` path relative to the Work's root."""

    __lk_state_value__ = True
    _origin: str | None = None

    if sys.version_info >= (3, 12):

        def __init__(self, *args: Any, origin: str | None = None) -> None:
            super().__init__(*_strip(args))
            self._setup(origin if origin is not None else _origin_of(args), args)

        def with_segments(self, *pathsegments: Any) -> Path:
            # Every derived path goes through here on 3.12+: no validation (a derived absolute path
            # is legal as a path; it just cannot be stored), same origin.
            derived = object.__new__(type(self))
            pathlib.PosixPath.__init__(derived, *pathsegments)
            derived._origin = self._origin
            return derived

    else:

        def __new__(cls, *args: Any, origin: str | None = None) -> Path:
            self = super().__new__(cls, *_strip(args))
            self._setup(origin if origin is not None else _origin_of(args), args)
            return self

    def _setup(self, origin: str | None, args: tuple[Any, ...]) -> None:
        self._origin = origin or None
        ctx = current_or_none()
        shown = args[0] if args and isinstance(args[0], str) else self.lit_raw
        normalise_rel(self.as_posix(), repr(shown), origin or (ctx.work_name if ctx else None))

    @classmethod
    def _build(cls, rel: str, origin: str | None) -> Path:
        """A Path without validation (unpickling, deriving)."""
        if sys.version_info >= (3, 12):
            p = object.__new__(cls)
            pathlib.PosixPath.__init__(p, rel)
        else:
            p = cls._from_parts((rel,))  # type: ignore[attr-defined]
        p._origin = origin
        return p

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.as_posix(), self._origin))

    def __repr__(self) -> str:
        origin = f", origin={self._origin!r}" if self._origin else ""
        return f"Path({self.lit_raw!r}{origin})"

    # -- identity -----------------------------------------------------------------------------------

    @property
    def lit_raw(self) -> str:
        return lit_of(self.as_posix())

    @property
    def lit(self) -> str:
        """The normalised ``lit://`` string; ``PathEscapeError`` if this (derived) path escapes."""
        return lit_of(normalise_rel(self.as_posix(), repr(self.lit_raw), self._origin))

    @property
    def origin_name(self) -> str:
        """The name of the Work whose files these are (``root.train``), or ``""`` when not known yet."""
        return self._origin or ""

    def _attach_origin(self, work_name: str) -> Path:
        """Mark the Work these files come from, unless known; the runtime calls this for attributes."""
        if self._origin is None:
            self._origin = work_name
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in state, events and run() arguments."""
        return {"type": PATH_TYPE, "path": self.lit, "origin": self._origin}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Path:
        if not is_path_dict(d):
            raise PathEscapeError(f"{d!r} is not the JSON form of a Path (type '__path__', path 'lit://...')")
        return cls(d["path"], origin=d.get("origin") or None)

    # -- derived paths keep the origin (Python < 3.12; harmless after) ------------------------------

    def _adopt(self, other: Any) -> Any:
        if isinstance(other, Path):
            other._origin = self._origin
        return other

    def __truediv__(self, key: Any) -> Path:
        return self._adopt(super().__truediv__(key))

    def joinpath(self, *other: Any) -> Path:
        return self._adopt(super().joinpath(*other))

    @property
    def parent(self) -> Path:
        return self._adopt(super().parent)

    def with_name(self, name: str) -> Path:
        return self._adopt(super().with_name(name))

    def with_suffix(self, suffix: str) -> Path:
        return self._adopt(super().with_suffix(suffix))

    def with_stem(self, stem: str) -> Path:
        return self._adopt(super().with_stem(stem))

    def iterdir(self) -> Generator[Path, None, None]:
        return (self._adopt(p) for p in super().iterdir())

    def glob(self, pattern: str, *args: Any, **kwargs: Any) -> Iterator[Path]:  # type: ignore[override]
        return (self._adopt(p) for p in super().glob(pattern, *args, **kwargs))

    def rglob(self, pattern: str, *args: Any, **kwargs: Any) -> Iterator[Path]:  # type: ignore[override]
        return (self._adopt(p) for p in super().rglob(pattern, *args, **kwargs))

    # An absolute path is a place on this machine, not a lit path: these give plain pathlib paths.
    def absolute(self) -> pathlib.Path:  # type: ignore[override]
        return pathlib.Path(os.path.abspath(os.fspath(self)))

    def resolve(self, strict: bool = False) -> pathlib.Path:  # type: ignore[override]
        return pathlib.Path(os.fspath(self)).resolve(strict=strict)

    @classmethod
    def cwd(cls) -> pathlib.Path:  # type: ignore[override]
        return pathlib.Path.cwd()

    @classmethod
    def home(cls) -> pathlib.Path:  # type: ignore[override]
        return pathlib.Path.home()

    # -- files ------------------------------------------------------------------------------------

    def local(self, action: str = "Path") -> str:
        """The absolute local path in the current Work's root, checked for escapes (also symlinks)."""
        ctx = current(action)
        return inside(ctx.work_root, self.as_posix(), repr(self.lit_raw), ctx.work_name)

    def exists_local(self) -> bool:
        """Whether the files exist in the current Work's root."""
        return os.path.exists(self.local("Path.exists_local()"))

    def exists_remote(self) -> bool:
        """Whether the origin Work has these files (it is asked to persist them, then the store is read)."""
        from ._persist import remote_entries

        ctx = current("Path.exists_remote()")
        return remote_entries(ctx, self) is not None

    def get(self, overwrite: bool = False) -> None:
        """Transfer the files from the origin Work into this Work's root, now (every call transfers).

        ``FileNotFoundError`` when the origin has nothing at this path; ``FileExistsError`` when the
        files exist here and ``overwrite`` is False.
        """
        from ._persist import fetch

        ctx = current("Path.get()")
        if not overwrite and os.path.exists(self.local("Path.get()")):
            raise FileExistsError(
                f"{self.lit_raw} exists in {ctx.work_name}'s folder; pass overwrite=True to replace it with "
                f"the files of {self.origin_name or 'its origin'}"
            )
        fetch(ctx, self, overwrite=True, kind="path.transferred", required=True, force=True)


def _rebuild(rel: str, origin: str | None) -> Path:
    return Path._build(rel, origin)
