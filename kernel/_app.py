"""LightningApp, and loading one from an app file."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import types
from typing import Any

from ._component import Component, assign_names
from ._flow import LightningFlow
from ._work import LightningWork
from .errors import AppLoadError


class LightningApp:
    """The app: a tree of components under ``root`` (a flow, or a single Work)."""

    def __init__(self, root: LightningFlow | LightningWork, info: Any = None, **kwargs: Any) -> None:
        if not isinstance(root, (LightningFlow, LightningWork)):
            raise TypeError(
                f"LightningApp needs a LightningFlow or LightningWork as root, got {type(root).__name__}"
            )
        self.root = root
        self.info = info
        self.components: dict[str, Component] = {}
        self._works: dict[str, LightningWork] = {}
        for name, comp in assign_names(root).items():
            self.add(name, comp)

    def add(self, name: str, comp: Component) -> None:
        """Make ``comp`` the app's component ``name``: at the start, or a dynamic one while it runs."""
        object.__setattr__(comp, "_lk_name", name)
        # The state's shape is now fixed: a new public attribute later is an error.
        object.__setattr__(comp, "_lk_frozen", True)
        self.components[name] = comp
        if isinstance(comp, LightningWork):
            self._works[name] = comp
            # Paths made in __init__ (before the Work had a name) learn their origin now.
            for value in vars(comp).values():
                if getattr(value, "__lk_state_value__", False) and getattr(value, "_origin", "") is None:
                    value._origin = name

    @property
    def works(self) -> dict[str, LightningWork]:
        """The app's Works by name; the same dict for the app's life, growing with dynamic Works."""
        return self._works

    @property
    def flows(self) -> dict[str, LightningFlow]:
        return {n: c for n, c in self.components.items() if isinstance(c, LightningFlow)}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every component's kind, initial state and spec, as recorded in ``run.created``."""
        return {name: describe(comp) for name, comp in self.components.items()}


def describe(comp: Component) -> dict[str, Any]:
    """A component's kind (flow, work or structure), state and spec, as the log records them."""
    from .structures import is_structure

    if isinstance(comp, LightningWork):
        return {"kind": "work", "vars": comp._lk_vars(), "spec": comp._lk_spec()}
    return {"kind": "structure" if is_structure(comp) else "flow", "vars": comp._lk_vars(), "spec": {}}


LOADING: list[str] = []
"""The app files ``exec_file`` is running now (innermost last): ``MultiProcessRuntime.dispatch()``
called by one of them is the kernel loading the app, not a user starting it."""


def exec_file(path: str, name: str, argv: list[str] | None = None) -> types.ModuleType:
    """Run the Python file ``path`` as Lightning App runs an app file: as ``__main__`` (its ``if
    __name__ == "__main__":`` blocks run), with ``sys.argv`` its path and ``argv`` (``run app
    --app_args``), and its folder at the end of ``sys.path`` so the modules beside it import too. It is then
    module ``name``: what it defines is renamed from ``__main__`` to ``name``, so that the kernel and
    every worker know its classes by one name. A file that fails to run is not left in ``sys.modules``.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{path!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    code = spec.loader.get_code(name)  # type: ignore[attr-defined]
    if code is None:
        raise AppLoadError(f"{path!r} has no code to run")
    module.__name__ = "__main__"
    sys.modules[name] = module
    folder = os.path.dirname(path)
    if folder not in sys.path:
        # Appended, as Lightning App did: an app file named like a package it imports (xgboost.py
        # doing `from xgboost import ...`, a sample of its docs) gets the package, not itself.
        sys.path.append(folder)
    saved_argv, saved_main = sys.argv, sys.modules.get("__main__")
    sys.argv = [path, *(argv or [])]
    # While it runs, the file is __main__ for what looks it up there (dataclasses, pydantic, pickle).
    sys.modules["__main__"] = module
    LOADING.append(path)
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        LOADING.pop()
        sys.argv = saved_argv
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        module.__name__ = name
    _rehome(module, name)
    _importable(name, path)
    return module


def _importable(name: str, path: str) -> None:
    """Let a process that this one spawns import the file as module ``name``: what the file defines
    is known by that name, and ``multiprocessing``'s spawn (``torch.multiprocessing.spawn`` of a
    function in the app file, as Lightning App's PyTorch examples do) pickles functions by it. A
    spawned child gets this process's ``sys.path``, where a folder of this host's code cache holds
    ``name.py``, a link to the file; importing it runs the file as a module (not ``__main__``), as
    spawn runs ``__main__``. ``name`` has the hash of the file's path: one link per app file, kept
    (a per-process folder would be left behind by every worker, which ends with ``os._exit``)."""
    from ._code import cache_dir

    folder = os.path.join(cache_dir(), ".modules")
    alias = os.path.join(folder, f"{name}.py")
    target = os.path.abspath(path)
    try:
        if not (os.path.islink(alias) and os.readlink(alias) == target):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fresh = f"{alias}.{os.getpid()}.tmp"
            if os.path.lexists(fresh):
                os.remove(fresh)
            os.symlink(target, fresh)
            os.replace(fresh, alias)  # atomic: a process importing it meanwhile sees one link or the other
    except OSError:
        return  # a read-only cache: the app runs, only spawning a function of it cannot work
    if folder not in sys.path:
        sys.path.append(folder)


def _rehome(module: types.ModuleType, name: str) -> None:
    """Classes and functions the file defined say they come from module ``name``, not ``__main__``."""
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen or getattr(obj, "__module__", None) != "__main__":
            return
        seen.add(id(obj))
        if isinstance(obj, type) or callable(obj):
            try:
                obj.__module__ = name
            except (AttributeError, TypeError):
                return
        if isinstance(obj, type):
            for member in vars(obj).values():
                visit(member)

    for value in list(vars(module).values()):
        if isinstance(value, (type, types.FunctionType)):
            visit(value)


def load_app(path: str, argv: list[str] | None = None) -> tuple[LightningApp, types.ModuleType]:
    """Run the app file at ``path`` (as ``__main__``, with ``argv``) and return its LightningApp.

    The file then is a module of its own, registered with cloudpickle to be pickled by value, so a
    worker anywhere can rebuild the app without the file.
    """
    if not os.path.isfile(path):
        raise AppLoadError(f"app file {path!r} does not exist")
    full = os.path.abspath(path)
    digest = hashlib.sha1(full.encode()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(full))[0]
    mod_name = f"lk_app_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    try:
        module = exec_file(full, mod_name, argv)
    except (SystemExit, AppLoadError):
        raise
    except Exception as exc:
        raise AppLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    apps = [v for v in vars(module).values() if isinstance(v, LightningApp)]
    if not apps:
        raise AppLoadError(
            f"{path} defines no LightningApp; end it with `app = LightningApp(YourRootFlow())`"
        )
    if len(apps) > 1 and not isinstance(getattr(module, "app", None), LightningApp):
        raise AppLoadError(f"{path} defines {len(apps)} LightningApps; name the one to run `app`")
    app = module.app if isinstance(getattr(module, "app", None), LightningApp) else apps[0]
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return app, module
