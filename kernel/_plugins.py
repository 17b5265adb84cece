"""The executor plugin host: pluggy, the entry-point group ``lightning_kernel.executors``.

Entry points are loaded one by one (pluggy's ``load_setuptools_entrypoints`` stops at the first
that fails), and a broken plugin is reported by name while the others load. Each plugin's
``lk_executors(config)`` gets its own ``[executors.<entry point name>]`` table. The built-in executors'
names (``local``, ``ssh``, ``ray``) belong to them: a plugin that offers one is reported, naming both.
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
BUILTIN = {
    "local": "lightning_kernel.executors.local",
    "ssh": "lightning_kernel.executors.ssh",
    "ray": "lightning_kernel.executors.cloud",
}


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


def load_executors(
    extra: list[Any] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
    data_dir: str = "",
) -> Executors:
    """The executors of every plugin; ``tables`` are the ``[executors.<name>]`` tables of the config."""
    from lightning_kernel import executors as specs

    tables = tables or {}
    pm = pluggy.PluginManager("lightning_kernel")
    pm.add_hookspecs(specs._hookspecs)
    out = Executors()
    modules: dict[str, str] = {}
    # Built-ins first, so that their names are theirs whatever order the entry points come in.
    eps = sorted(entry_points(group=GROUP), key=lambda ep: (BUILTIN.get(ep.name) != ep.value, ep.name))
    for ep in eps:
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            modules[ep.name] = ep.value
        except Exception as exc:
            out.broken[ep.name] = f"{type(exc).__name__}: {exc}"
    for i, plugin in enumerate(extra or []):
        pm.register(plugin, name=f"extra-{i}")
        modules[f"extra-{i}"] = repr(plugin)
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            out.broken[pm.get_name(exc.plugin) or repr(exc.plugin)] = str(exc)
            pm.unregister(exc.plugin)
    unknown = sorted(set(tables) - set(modules) - set(BUILTIN))
    for impl in pm.hook.lk_executors.get_hookimpls():
        config = {"data_dir": data_dir, **tables.get(impl.plugin_name, {})}
        try:
            provided: Any = impl.function(config) if impl.argnames else impl.function()
        except Exception as exc:
            out.broken[impl.plugin_name] = f"lk_executors() raised {type(exc).__name__}: {exc}"
            continue
        for executor in provided or []:
            name = getattr(executor, "name", None)
            if not isinstance(name, str) or not name:
                out.broken[impl.plugin_name] = f"executor {executor!r} has no name"
            elif name in BUILTIN and modules.get(impl.plugin_name) != BUILTIN[name]:
                out.broken[impl.plugin_name] = (
                    f"plugin {impl.plugin_name!r} ({modules.get(impl.plugin_name)}) offers an executor named "
                    f"{name!r}, the name of the built-in executor of {BUILTIN[name]}; give it another name"
                )
            elif name in out.by_name:
                out.broken[impl.plugin_name] = f"executor name {name!r} is already provided by another plugin"
            else:
                out.by_name[name] = executor
    for name, why in out.broken.items():
        log.warning("executor plugin %r was not loaded: %s", name, why)
    for name in unknown:
        if name not in out.by_name:
            log.warning("lightning-kernel.toml configures [executors.%s], but no plugin provides it", name)
    return out
