"""LightningFlow: the component that orchestrates Works and child flows."""

from __future__ import annotations

from typing import Any

from ._component import Component


class AppStop(BaseException):
    """Raised by ``flow.stop()``: the app ends successfully. A BaseException so user code that
    catches ``Exception`` does not swallow it."""

    def __init__(self, message: str = "") -> None:
        self.message = message
        super().__init__(message)


class AppFail(BaseException):
    """Raised by ``flow.fail()``: the app ends with an error."""

    def __init__(self, message: str = "") -> None:
        self.message = message
        super().__init__(message)


class LightningFlow(Component):
    """Coordinates Works and child flows. ``run()`` is called again and again by the flow loop,
    each time events arrive; every public attribute is part of the app's state."""

    def __init__(self) -> None:
        pass

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Override: one iteration of the flow."""

    def stop(self, end_msg: str = "") -> None:
        """End the app successfully, printing ``end_msg`` if given."""
        if end_msg:
            print(end_msg)
        raise AppStop(end_msg)

    def fail(self, message: str = "") -> None:
        """End the app with an error: ``run app`` prints ``message`` and exits non-zero."""
        raise AppFail(message)

    @property
    def flows(self) -> dict[str, LightningFlow]:
        """Every flow below this one, by name."""
        out: dict[str, LightningFlow] = {}
        for _, child in self._lk_children():
            if isinstance(child, LightningFlow):
                out[child.name] = child
                out.update(child.flows)
        return out

    def works(self, recurse: bool = True) -> list[Any]:
        """The Works of this flow, and of its child flows when ``recurse``."""
        return [w for _, w in self.named_works(recurse)]

    def named_works(self, recurse: bool = True) -> list[tuple[str, Any]]:
        from ._work import LightningWork

        out: list[tuple[str, Any]] = []
        for key, child in self._lk_children():
            if isinstance(child, LightningWork):
                out.append((child.name or key, child))
            elif recurse and isinstance(child, LightningFlow):
                out.extend(child.named_works(recurse))
        return out

    @property
    def state(self) -> dict[str, Any]:
        """The tree's state: ``{"vars": ..., "flows": {name: ...}, "works": {name: {"vars": ...}}}``."""
        from ._work import LightningWork

        flows: dict[str, Any] = {}
        works: dict[str, Any] = {}
        for key, child in self._lk_children():
            if isinstance(child, LightningWork):
                works[key] = child.state
            elif isinstance(child, LightningFlow):
                flows[key] = child.state
        return {"vars": self._lk_vars(), "flows": flows, "works": works}
