"""Hook dispatch by name: callbacks first, then the module, as PL does.

The hooks each callback and the module override are looked up once per ``fit``/``validate``/...
(``HookTable``); a hook nobody overrides costs one dict lookup, not a Python call per callback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

_MONITORING = frozenset({"ModelCheckpoint", "Checkpoint", "EarlyStopping"})


def _function(obj: Any, name: str) -> Any:
    attr = getattr(obj, name, None)
    return getattr(attr, "__func__", attr)


def is_overridden(name: str, obj: Any, parent: type | None) -> bool:
    """Whether ``obj`` (or its class) defines ``name`` differently from ``parent``."""
    if obj is None:
        return False
    mine = _function(obj, name)
    if mine is None:
        return False
    if parent is None:
        return True
    theirs = getattr(parent, name, None)
    if theirs is None:
        return True
    if isinstance(mine, functools.partial):
        mine = mine.func
    return getattr(mine, "__code__", mine) is not getattr(theirs, "__code__", theirs)


def callback_base() -> type | None:
    try:
        from .callbacks import Callback
    except ImportError:  # the callbacks package is optional while it is being built
        return None
    return Callback


def class_names(obj: Any) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def is_monitoring(callback: Any) -> bool:
    """Checkpoint and early-stopping callbacks see ``on_train_epoch_end`` after the module (PL's order)."""
    return bool(_MONITORING & class_names(callback))


class HookTable:
    """The bound hook functions of one run, per hook name."""

    def __init__(self, callbacks: Sequence[Any], module: Any, module_base: type) -> None:
        self.callbacks = list(callbacks)
        self.module = module
        self.module_base = module_base
        self.callback_base = callback_base()
        self._cb: dict[str, list[Callable[..., Any]]] = {}
        self._mod: dict[str, Callable[..., Any] | None] = {}

    def callback_hooks(self, name: str) -> list[Callable[..., Any]]:
        hooks = self._cb.get(name)
        if hooks is None:
            hooks = [
                getattr(cb, name)
                for cb in self.callbacks
                if hasattr(cb, name) and is_overridden(name, cb, self.callback_base)
            ]
            self._cb[name] = hooks
        return hooks

    def module_hook(self, name: str) -> Callable[..., Any] | None:
        if name not in self._mod:
            self._mod[name] = (
                getattr(self.module, name) if is_overridden(name, self.module, self.module_base) else None
            )
        return self._mod[name]

    def overridden(self, name: str) -> bool:
        return bool(self.callback_hooks(name)) or self.module_hook(name) is not None
