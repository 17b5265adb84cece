"""The executor plugin host: pluggy, the entry-point group ``lightning_kernel.executors``.

Entry points are loaded one by one (pluggy's ``load_setuptools_entrypoints`` stops at the first
that fails), and a broken plugin is reported by name while the others load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from .errors import ExecutorError

log = logging.getLogger(__name__)
GROUP = "lightning_kernel.executors"


@dataclass
class Executors:
    by_name: dict[str, Any] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        try:
            return self.by_name[name]
        except KeyError:
            hint = f"; plugins that failed to load: {self.broken}" if self.broken else ""
            raise ExecutorError(f"no executor named {name!r}; known: {sorted(self.by_name)}{hint}") from None


def load_executors(extra: list[Any] | None = None) -> Executors:
    from lightning_kernel import executors as specs

    pm = pluggy.PluginManager("lightning_kernel")
    pm.add_hookspecs(specs._hookspecs)
    out = Executors()
    for ep in entry_points(group=GROUP):
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            out.broken[ep.name] = f"{type(exc).__name__}: {exc}"
    for i, plugin in enumerate(extra or []):
        pm.register(plugin, name=f"extra-{i}")
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            out.broken[pm.get_name(exc.plugin) or repr(exc.plugin)] = str(exc)
            pm.unregister(exc.plugin)
    for impl in pm.hook.lk_executors.get_hookimpls():
        try:
            provided: Any = impl.function()
        except Exception as exc:
            out.broken[impl.plugin_name] = f"lk_executors() raised {type(exc).__name__}: {exc}"
            continue
        for executor in provided or []:
            name = getattr(executor, "name", None)
            if not isinstance(name, str) or not name:
                out.broken[impl.plugin_name] = f"executor {executor!r} has no name"
            elif name in out.by_name:
                out.broken[impl.plugin_name] = f"executor name {name!r} is already provided by another plugin"
            else:
                out.by_name[name] = executor
    for name, why in out.broken.items():
        log.warning("executor plugin %r was not loaded: %s", name, why)
    return out
