"""The app's code as an artifact: its folder, packed once per run, unpacked once per host.

A worker on another machine sees nothing of the kernel's: it gets the app's folder (the app file and
the modules and files beside it) as a content-addressed ``code`` artifact, unpacks it into a cache
keyed by that hash, and imports the app file under the module name the kernel gave it. The pickled
app then refers to the app's classes by name (not by value), so a worker runs the user's files, and
tracebacks show the app file's name and lines on any host.

Why not pickle the app module by value, as before: cloudpickle 3.1.3 renames the files of code it
pickles by value to ``<dynamic-code>`` (a deterministic payload), so a traceback loses the app's lines;
and modules beside ``app.py`` were pickled by reference, so a host without the folder could not import
them. Lightning App packed the folder too (honouring ``.lightningignore``), as we do.

The archive is a tar, gzip level 1 (the cheapest level already halves source files), with sorted names,
no owners and mtime 0, so the same folder always gives the same bytes and hence the same artifact:
a re-run uploads nothing and a host unpacks it once.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import os
import secrets
import shutil
import stat
import sys
import tarfile
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import AppLoadError

IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".lightning-kernel",
        ".lightning",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        ".tox",
        ".nox",
        ".idea",
        ".eggs",
    }
)
IGNORED_FILES = ("*.pyc", "*.pyo", ".DS_Store")
IGNORE_FILE = ".lightningignore"
WARN_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Code:
    """A run's code: the artifact of its folder, and the app file's module name and path in it."""

    ref: str
    module: str
    entry: str


@dataclass(frozen=True)
class PackedCode:
    """The archive of an app's folder, and where the app file sits in it."""

    data: bytes
    entry: str
    files: int
    size: int
    """Bytes of the files before compression."""
    largest: list[tuple[str, int]]


def _ignore_patterns(folder: str) -> list[str]:
    path = os.path.join(folder, IGNORE_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        p = pattern.rstrip("/").lstrip("/")
        if dir_only and not is_dir:
            continue
        target = rel if "/" in p else name
        if fnmatch.fnmatchcase(target, p):
            return True
    return False


def _walk(folder: str, exclude: list[str]) -> Iterator[tuple[str, str]]:
    """``(relative path, absolute path)`` of every file and link to pack, sorted."""
    patterns = _ignore_patterns(folder)
    excluded = {os.path.realpath(p) for p in exclude}
    for top, dirs, files in os.walk(folder):
        rel_top = os.path.relpath(top, folder)
        keep = []
        for d in sorted(dirs):
            full = os.path.join(top, d)
            rel = d if rel_top == "." else f"{rel_top}/{d}"
            if (
                d in IGNORED_DIRS
                or os.path.realpath(full) in excluded
                or os.path.isfile(os.path.join(full, "pyvenv.cfg"))  # a virtualenv
                or _ignored(rel, True, patterns)
            ):
                continue
            keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if any(fnmatch.fnmatchcase(name, p) for p in IGNORED_FILES) or _ignored(rel, False, patterns):
                continue
            yield rel, os.path.join(top, name)


def pack(app_file: str, exclude: list[str] | None = None) -> PackedCode:
    """Pack the folder of ``app_file`` (less ``exclude`` and what is ignored) into a tar archive."""
    full = os.path.abspath(app_file)
    folder = os.path.dirname(full)
    buf = io.BytesIO()
    files, size, sizes = 0, 0, []
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in _walk(folder, exclude or []):
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone while we walked
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                inside = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                if os.path.isabs(target) or inside == ".." or inside.startswith("../"):
                    # A link out of the folder (a dataset elsewhere on this machine): not the app's
                    # code, and no unpacking may follow it; Works reach such data as files or Paths.
                    continue
                info.type = tarfile.SYMTYPE
                info.linkname = target
                info.mode = 0o777
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                try:
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                except OSError as exc:
                    raise AppLoadError(f"cannot read {path} to pack the app's folder: {exc}") from exc
                files += 1
                size += st.st_size
                sizes.append((rel, st.st_size))
    largest = sorted(sizes, key=lambda kv: -kv[1])[:3]
    return PackedCode(buf.getvalue(), os.path.basename(full), files, size, largest)


def describe_size(code: PackedCode) -> str:
    """A warning for a folder big enough to slow every start, naming what weighs most."""
    heavy = ", ".join(f"{rel} ({n / 1e6:.0f} MB)" for rel, n in code.largest)
    return (
        f"the app's folder holds {code.size / 1e6:.0f} MB in {code.files} files, packed for every run "
        f"(largest: {heavy}); list what the Works do not need in {IGNORE_FILE}"
    )


def cache_dir() -> str:
    """Where this host unpacks code artifacts: ``LK_CODE_CACHE``, else ``~/.cache/lightning-kernel/code``."""
    return os.environ.get("LK_CODE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "lightning-kernel", "code"
    )


def unpack(data: bytes, ref: str, root: str | None = None) -> str:
    """The folder holding code artifact ``ref`` (whose bytes are ``data``), unpacked once per host.

    Unpacked beside its final place and renamed into it, so a crash never leaves half a folder and
    two workers unpacking at once both end up with the same one."""
    base = root or cache_dir()
    final = os.path.join(base, ref)
    if os.path.isdir(final):
        return final
    os.makedirs(base, mode=0o700, exist_ok=True)
    tmp = os.path.join(base, f".tmp-{ref[:12]}-{secrets.token_hex(4)}")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # no absolute paths, no links out of the folder
            else:  # pragma: no cover - Pythons without PEP 706
                for member in tar.getmembers():
                    if member.name.startswith("/") or ".." in member.name.split("/"):
                        raise AppLoadError(
                            f"code artifact {ref} holds a path outside its folder: {member.name}"
                        )
                tar.extractall(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def import_app(root: str, module: str, entry: str, argv: list[str] | None = None) -> types.ModuleType:
    """Import the app file ``entry`` of the unpacked folder ``root`` as ``module`` (once per process),
    run as the kernel ran it (``argv``: the run's ``--app_args``), with the folder on ``sys.path`` so
    the modules beside it import too."""
    from ._app import exec_file

    existing = sys.modules.get(module)
    if existing is not None:
        return existing
    path = os.path.join(root, entry)
    if not os.path.isfile(path):
        raise AppLoadError(f"the app's code has no Python file {entry!r} (artifact at {root})")
    return exec_file(path, module, argv)


def load_run_app(artifacts: Any, run: dict[str, Any]) -> Any:
    """The ``LightningApp`` a run was created with (``run``: its ``run.created`` fields, as the fold
    keeps them: ``id``, ``app``, ``code``, ``module``, ``entry``), from ``artifacts``, the store of the
    kernel that made it: its code artifact is unpacked and imported first (the pickled app names its
    classes), then the app unpickled. Only a run of this user's own store is loaded so."""
    import cloudpickle

    from ._app import LightningApp
    from .errors import ArtifactError, KernelError

    try:
        if run.get("code"):
            root = unpack(artifacts.get_bytes(run["code"]), run["code"])
            import_app(root, run["module"], run["entry"], run.get("argv"))
        blob = artifacts.get_bytes(run["app"])
    except ArtifactError as exc:
        raise ArtifactError(
            f"run {run['id']} cannot be loaded: {exc}. Was it made by a kernel with another "
            "artifact store (each data dir has its own)? Pass that one's --artifacts (LK_ARTIFACTS)"
        ) from exc
    app = cloudpickle.loads(blob)
    if not isinstance(app, LightningApp):
        raise KernelError(f"the app of run {run['id']} unpickles to a {type(app).__name__}")
    return app
