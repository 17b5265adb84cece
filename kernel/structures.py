"""``Dict`` and ``List``: components held by key or position, which may grow while the app runs.

As in Lightning App (``lightning.app.structures``), a flow keeps Works (or flows) in a ``Dict`` or a
``List`` attribute, and the children are named after it: ``root.models.small``, ``root.steps.0``.
Adding one while the app runs (``self.models["big"] = Trainer()`` in ``run()``) makes it a dynamic
component: the running app adopts it, records it (``component.added``, with the component pickled
into the artifact store), and hosts it as any other, so it is replayed, resumed and forked with the
run. A structure holds components only, and a child of a running app is never replaced or removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, TypeVar

from ._component import Component, is_component
from .errors import StateError

T = TypeVar("T", bound=Component)


class _Structure(Component):
    """What ``Dict`` and ``List`` share: their children are their items, and they have no state."""

    def _lk_vars(self) -> dict[str, Any]:
        return {}

    def _lk_check(self, key: str, value: Any) -> None:
        if not is_component(value):
            raise StateError(
                self._display_name(),
                key,
                f"a {type(self).__name__} holds LightningFlows and LightningWorks, not "
                f"{type(value).__name__}; keep other values in an attribute of the flow",
            )

    def _lk_frozen_change(self, what: str) -> None:
        if self._lk_tree is not None:
            raise StateError(self._display_name(), "", f"{what}: a running app's components stay in the tree")

    @property
    def state(self) -> dict[str, Any]:
        from ._flow import LightningFlow
        from ._work import LightningWork

        flows: dict[str, Any] = {}
        works: dict[str, Any] = {}
        for key, child in self._lk_children():
            if isinstance(child, LightningWork):
                works[key] = child.state
            elif isinstance(child, (LightningFlow, _Structure)):
                flows[key] = child.state
        return {"works": works, "flows": flows}


class Dict(_Structure, dict[str, T]):
    """A ``dict`` of components by string key (no dots): ``Dict(a=WorkA(), b=WorkB())``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self)
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __setitem__(self, key: str, value: T) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise StateError(
                self._display_name(), str(key), "a Dict's keys are non-empty strings without dots"
            )
        self._lk_check(key, value)
        self._lk_attach(key, value, key in self)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._lk_frozen_change(f"del {self._display_name()}[{key!r}]")
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        self._lk_frozen_change(f"{self._display_name()}.pop({key!r})")
        return dict.pop(self, key, *default)

    def setdefault(self, key: str, default: T | None = None) -> T:
        if key not in self:
            assert default is not None, "Dict.setdefault needs a component"
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _lk_children(self) -> Iterator[tuple[str, Component]]:
        yield from dict.items(self)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        # Pickled as its type, its attributes and its items (dict's own reduce would skip __dict__).
        return (_rebuild, (type(self), dict(vars(self)), list(dict.items(self))))

    def __repr__(self) -> str:
        return f"Dict({dict.__repr__(self)})"


class List(_Structure, list[T]):
    """A ``list`` of components, named by position: ``List(WorkA(), WorkB())``."""

    def __init__(self, *items: T) -> None:
        list.__init__(self)
        for item in items:
            self.append(item)

    def append(self, value: T) -> None:
        key = str(len(self))
        self._lk_check(key, value)
        self._lk_attach(key, value, False)
        list.append(self, value)

    def extend(self, values: Iterable[T]) -> None:
        for value in values:
            self.append(value)

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice) or self._lk_tree is not None:
            self._lk_frozen_change(f"{self._display_name()}[{index!r}] = ...")
        self._lk_check(str(index), value)
        list.__setitem__(self, index, value)

    def __delitem__(self, index: Any) -> None:
        self._lk_frozen_change(f"del {self._display_name()}[{index!r}]")
        list.__delitem__(self, index)

    def pop(self, index: SupportsIndex = -1) -> T:
        self._lk_frozen_change(f"{self._display_name()}.pop()")
        return list.pop(self, index)

    def insert(self, index: SupportsIndex, value: T) -> None:
        self._lk_frozen_change(f"{self._display_name()}.insert()")
        self._lk_check(str(index), value)
        list.insert(self, index, value)

    def _lk_children(self) -> Iterator[tuple[str, Component]]:
        for i, child in enumerate(list.__iter__(self)):
            yield str(i), child

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (_rebuild, (type(self), dict(vars(self)), list(list.__iter__(self))))

    def __repr__(self) -> str:
        return f"List({list.__repr__(self)})"


def _rebuild(cls: Any, attrs: dict[str, Any], items: list[Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(attrs)
    if isinstance(obj, dict):
        for key, value in items:
            dict.__setitem__(obj, key, value)
    else:
        list.extend(obj, items)
    return obj


def is_structure(value: object) -> bool:
    return isinstance(value, _Structure)


__all__ = ["Dict", "List"]
