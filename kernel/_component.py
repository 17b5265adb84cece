"""What LightningFlow and LightningWork share: names, the component tree, and state attributes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ._state import normalise, public_vars
from .errors import StateError

ChangeHook = Callable[[str, Any], None]


class Tree(Protocol):
    """The running app's side of a component tree: it adopts components added while it runs."""

    def adopt(self, parent: Component, key: str, child: Component) -> None: ...


def is_component(value: object) -> bool:
    return isinstance(value, Component)


class Component:
    """State handling for flows and works. Private attributes (``_x``) are never state."""

    _lk_name: str = ""
    _lk_frozen: bool = False
    _lk_on_change: ChangeHook | None = None
    _lk_tree: Tree | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        if is_component(value):
            self._lk_attach(name, value, name in self.__dict__)
            object.__setattr__(self, name, value)
            return
        if self._lk_frozen and name not in self.__dict__:
            raise StateError(
                self._display_name(),
                name,
                "a new public attribute was created outside __init__; the state's shape is fixed when "
                "the app starts, so declare it in __init__ (or name it with a leading underscore)",
            )
        value = self._lk_convert(name, value)
        clean = normalise(self._display_name(), name, value)
        object.__setattr__(self, name, value)
        hook = self._lk_on_change
        if hook is not None:
            hook(name, clean)

    def _lk_attach(self, key: str, child: Component, replacing: bool) -> None:
        """``child`` is becoming this component's ``key`` while the app runs: a dynamic component,
        which the running app adopts (names, records and hosts it)."""
        tree = self._lk_tree
        if tree is None:
            return
        if replacing:
            raise StateError(
                self._display_name(),
                key,
                "a component of a running app cannot be replaced; add a new one under another name",
            )
        tree.adopt(self, key, child)

    def _lk_convert(self, name: str, value: Any) -> Any:
        """A hook for Works: ``lit://`` strings become Paths."""
        return value

    def _display_name(self) -> str:
        return self._lk_name or type(self).__name__

    @property
    def name(self) -> str:
        """The component's place in the tree: ``root``, ``root.w_1``, ``root.child.w``."""
        return self._lk_name

    def _lk_children(self) -> Iterator[tuple[str, Component]]:
        for key, value in vars(self).items():
            if not key.startswith("_") and is_component(value):
                yield key, value

    def _lk_vars(self) -> dict[str, Any]:
        """The state of this component alone, normalised to JSON values."""
        name = self._display_name()
        return {k: normalise(name, k, v) for k, v in public_vars(self).items()}

    def _lk_set_vars(self, values: dict[str, Any]) -> None:
        """Hydrate from the projection, bypassing checks and hooks (the values came from JSON)."""
        d = self.__dict__
        for k, v in values.items():
            current = d.get(k)
            if current is not v and current != v:
                d[k] = self._lk_revive(k, v)

    def _lk_revive(self, name: str, value: Any) -> Any:
        """A hook for Works: JSON forms of Paths and Payloads become objects again."""
        return value


def walk(root: Component, name: str = "root") -> Iterator[tuple[str, Component]]:
    """Every component of the tree under ``root``, depth first, in attribute order, with its name."""
    yield name, root
    for key, child in root._lk_children():
        yield from walk(child, f"{name}.{key}")


def assign_names(root: Component) -> dict[str, Component]:
    """Name every component of the tree and return them by name; a component may appear once only."""
    seen: dict[int, str] = {}
    out: dict[str, Component] = {}
    for name, comp in walk(root):
        if id(comp) in seen:
            raise StateError(
                name,
                "",
                f"this component is also {seen[id(comp)]}; each component may appear once in the tree",
            )
        seen[id(comp)] = name
        object.__setattr__(comp, "_lk_name", name)
        out[name] = comp
    return out
