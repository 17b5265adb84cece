"""``TracerPythonScript``: an existing Python script run as a Work, in the Work's process.

As in Lightning App: the script runs with ``runpy`` as ``__main__``, ``sys.argv`` set to the script
and ``script_args`` (plus ``--key=value`` for each ``run(params=...)`` entry), ``env`` added to the
environment while it runs, and ``configure_tracer()`` returning the ``Tracer`` that instruments it.
``run(**kwargs)`` values (Payloads unwrapped) are globals of the script.

``outputs`` names what the script leaves behind. A name the script defined as a global becomes a
``Payload`` of its value in the attribute of that name (Lightning App's behaviour); any other name is
a file pattern (a path or a glob) relative to the Work's folder, where the script runs: a path
becomes a ``lightning_kernel.Path`` and a glob a list of them, so other Works get the files by being
handed them. ``paths`` gives the file outputs by pattern.

A script's ``sys.exit(0)`` is a success (its globals are gone: only file outputs are collected); any
other exit code fails the call with ``ScriptError`` naming it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tarfile
from collections.abc import Iterator
from typing import Any

from lightning_kernel.errors import ScriptError

from .._work import LightningWork
from ..utilities._tracer import Tracer
from ._script import ScriptLocation, param_arg, split_args

_GLOB = frozenset("*?[")


class PathList(list):
    """A list of Paths that is state: its JSON form is the list of the Paths' forms."""

    __lk_state_value__ = True

    def to_dict(self) -> list[dict[str, Any]]:  # the state's name for "JSON form"
        return [p.to_dict() for p in self]


@contextlib.contextmanager
def added_env(env: dict[str, Any] | None) -> Iterator[None]:
    """``env`` set in ``os.environ`` inside the block; the variables as they were after it."""
    before = {k: os.environ.get(k) for k in env or {}}
    os.environ.update({str(k): str(v) for k, v in (env or {}).items()})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def script_exit(work: str, script: str, exc: SystemExit) -> None:
    """Nothing for ``sys.exit(0)``/``sys.exit()``; ``ScriptError`` for any other exit."""
    code = exc.code
    if code is None or code == 0:
        return
    raise ScriptError(work, script, code if isinstance(code, int) else 1) from exc


class TracerPythonScript(LightningWork):
    """Runs the Python script ``script_path`` in the Work's process (see the module docstring)."""

    def on_before_run(self) -> None:
        """Called before the script runs."""

    def on_after_run(self, res: dict[str, Any]) -> None:
        """Called with the script's globals once it has run: collects the ``outputs``."""
        from lightning_kernel.storage import Path, Payload

        for name in self.outputs:
            if name in res:
                setattr(self, name, Payload(res[name]))
                continue
            if os.path.isabs(name):
                raise ValueError(
                    f"{self._display_name()}: output {name!r} is absolute; file outputs are relative to "
                    "the Work's folder, where the script runs"
                )
            if _GLOB & set(name):
                found = sorted(glob.glob(name, recursive=True))
                setattr(self, name, PathList(Path(f"lit://{f}", origin=self.name or None) for f in found))
            elif os.path.exists(name):
                setattr(self, name, Path(f"lit://{name}", origin=self.name or None))
            else:
                raise FileNotFoundError(
                    f"{self._display_name()}: output {name!r} is neither a global of {self.script_path} nor "
                    f"a file it wrote in the Work's folder {os.getcwd()}"
                )

    def configure_tracer(self) -> Tracer:
        """Override to instrument the script: return a ``Tracer`` with methods added."""
        return Tracer()

    def __init__(
        self,
        script_path: str | os.PathLike[str],
        script_args: list[Any] | str | None = None,
        outputs: list[str] | None = None,
        env: dict[str, Any] | None = None,
        code: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._lk_script = ScriptLocation(os.fspath(script_path))
        self.script_path = os.fspath(script_path)
        self.script_args = split_args(script_args)
        self.original_args = list(self.script_args)
        self.env = dict(env) if env else None
        self.outputs = [str(o) for o in outputs or []]
        for name in self.outputs:
            setattr(self, name, None)
        self.params: dict[str, Any] | None = None
        self.drive = code.get("drive") if code else None
        self.code_name = code.get("name") if code else None
        self.restart_count = 0

    @property
    def paths(self) -> dict[str, Any]:
        """The file outputs by pattern: a Path, a list of Paths, or None before the script ran."""
        from lightning_kernel.storage import Payload

        return {n: v for n in self.outputs if not isinstance(v := getattr(self, n, None), Payload)}

    def _lk_revive(self, name: str, value: Any) -> Any:
        # A glob output comes back from state as a list of Path forms: Paths again.
        if name in getattr(self, "outputs", ()) and isinstance(value, list):
            from lightning_kernel.storage import Path
            from lightning_kernel.storage._path import is_path_dict

            if all(is_path_dict(v) for v in value):
                return PathList(Path.from_dict(v) for v in value)
        return super()._lk_revive(name, value)

    def run(
        self,
        params: dict[str, Any] | None = None,
        restart_count: int | None = None,
        code_dir: str | None = ".",
        **kwargs: Any,
    ) -> None:
        """Run the script: ``params`` add ``--key=value`` arguments; ``restart_count`` makes a cached
        Work run again; ``code_dir`` is where the script runs (and ``code`` is extracted)."""
        from lightning_kernel.storage import Payload

        if restart_count:
            self.restart_count = restart_count
        if params:
            self.params = params
            self.script_args = self.original_args + [param_arg(k, v) for k, v in params.items()]
        code_dir = code_dir or "."
        if self.drive is not None and self.code_name:
            self._extract_code(code_dir)
        script = self._lk_script.find(self._display_name())
        init_globals = {k: v.value if isinstance(v, Payload) else v for k, v in kwargs.items()}
        self.on_before_run()
        before = os.getcwd()
        os.chdir(code_dir)
        res: dict[str, Any] = {}
        grouped = _in_process_group()
        ranks = {k: os.environ.get(k) for k in _DDP_ENV}
        try:
            with added_env(self.env):
                res = self._run_tracer(script, init_globals)
        except SystemExit as exc:
            script_exit(self._display_name(), self.script_path, exc)
        finally:
            os.chdir(before)
            sys.stdout.flush()
            if not grouped and _in_process_group():
                _leave_process_group(ranks)
        self.on_after_run(res)

    def _run_tracer(self, script: str, init_globals: dict[str, Any]) -> dict[str, Any]:
        tracer = self.configure_tracer()
        return tracer.trace(script, *self.script_args, init_globals=init_globals)

    def _extract_code(self, code_dir: str) -> None:
        # Lightning App's `code={"drive": ..., "name": ...}`: a tar.gz of the code, fetched and unpacked.
        assert self.drive is not None and self.code_name is not None
        if self.code_name not in self.drive.list():
            return
        if os.path.exists(self.code_name):
            os.remove(self.code_name)
        self.drive.get(self.code_name)
        with tarfile.open(self.code_name, "r:gz") as tar:
            tar.extractall(code_dir, filter="data")


def _in_process_group() -> bool:
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


_DDP_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What a multi-process Trainer's launcher sets in rank 0's environment."""


def _leave_process_group(ranks: dict[str, str | None]) -> None:
    """The script trained with several processes (``Trainer(strategy="ddp", devices=2)``): its other
    ranks leave the process group as their processes exit, and so must rank 0, this worker, which
    lives on after the script (gloo logged "received errors ... from rank 0" on the other ranks).
    The ranks its launcher put in the environment go too (``ranks``: as they were before the
    script), or the next run of the script would take this worker for a rank that was launched."""
    from lightning_kernel.trainer._strategy import _leave_process_group as leave

    leave()
    for key, value in ranks.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


__all__ = ["TracerPythonScript"]
