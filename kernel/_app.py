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
        self.components: dict[str, Component] = assign_names(root)
        # The state's shape is now fixed: a new public attribute later is an error.
        for name, comp in self.components.items():
            object.__setattr__(comp, "_lk_frozen", True)
            if isinstance(comp, LightningWork):
                # Paths made in __init__ (before the Work had a name) learn their origin now.
                for value in vars(comp).values():
                    if getattr(value, "__lk_state_value__", False) and getattr(value, "_origin", "") is None:
                        value._origin = name

    @property
    def works(self) -> dict[str, LightningWork]:
        return {n: c for n, c in self.components.items() if isinstance(c, LightningWork)}

    @property
    def flows(self) -> dict[str, LightningFlow]:
        return {n: c for n, c in self.components.items() if isinstance(c, LightningFlow)}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every component's kind, initial state and spec, as recorded in ``run.created``."""
        out: dict[str, dict[str, Any]] = {}
        for name, comp in self.components.items():
            if isinstance(comp, LightningWork):
                out[name] = {"kind": "work", "vars": comp._lk_vars(), "spec": comp._lk_spec()}
            else:
                out[name] = {"kind": "flow", "vars": comp._lk_vars(), "spec": {}}
        return out


def exec_file(path: str, name: str) -> types.ModuleType:
    """Import the Python file ``path`` as module ``name``, with its folder on ``sys.path`` so the
    modules beside it import too; a module that fails to run is not left in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{path!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_app(path: str) -> tuple[LightningApp, types.ModuleType]:
    """Import the app file at ``path`` and return its LightningApp.

    The file is imported as a module of its own (not ``__main__``), registered with cloudpickle to be
    pickled by value, so a worker anywhere can rebuild the app without the file.
    """
    if not os.path.isfile(path):
        raise AppLoadError(f"app file {path!r} does not exist")
    full = os.path.abspath(path)
    digest = hashlib.sha1(full.encode()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(full))[0]
    mod_name = f"lk_app_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    try:
        module = exec_file(full, mod_name)
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
