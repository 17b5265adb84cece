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


def configured(flow: Any, hook: str) -> Any:
    """What ``flow.<hook>()`` (``configure_api``, ``configure_commands``, ``configure_layout``)
    declares; None when the flow has no such hook or it raises ``NotImplementedError``."""
    configure = getattr(flow, hook, None)
    if configure is None:
        return None
    try:
        return configure()
    except NotImplementedError:
        return None


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

    def configure_layout(self) -> Any:
        """Override: the flow's page, as in Lightning App: a ``StaticWebFrontend``, or tabs
        ``[{"name": ..., "content": a Work, a child flow or a URL}]``. None: the system views only."""
        return None

    def configure_api(self) -> Any:
        """Override: the flow's HTTP routes, ``[lightning_kernel.api.Post("/api/v1/x", self.handle)]``."""
        return None

    def configure_commands(self) -> Any:
        """Override: the flow's commands, ``[{"name": self.handler}]``, run with ``run command``."""
        return None

    def fail(self, message: str = "") -> None:
        """End the app with an error: ``run app`` prints ``message`` and exits non-zero."""
        raise AppFail(message)

    def schedule(self, cron_pattern: str, start_time: Any = None, user_key: str | None = None) -> bool:
        """Run part of the flow on a timely manner, as in Lightning App::

            if self.schedule("hourly"):
                print("run some code every hour")

        True on the first call at a call site, then True in the iteration that runs on each tick of
        ``cron_pattern`` (a cron expression, https://crontab.guru, or one of ``midnight``, ``hourly``,
        ``daily``, ``weekly``, ``monthly``, ``yearly``, ``annually``), False otherwise. Ticks count
        from ``start_time`` (a ``datetime``), by default from the first call; the cache key is the
        pattern and the call site, or ``user_key``. Each tick is an event, so a replay and a resume
        see the same ticks; ticks missed while the run was interrupted collapse into one when it is
        resumed. Create dynamic Works under the condition and run them outside it, as Lightning App
        advises (``_schedule`` has the whole story).
        """
        from ._schedule import call

        return call(self, cron_pattern, start_time, user_key)

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
        from .structures import is_structure

        out: list[tuple[str, Any]] = []

        def visit(comp: Any, flows: bool) -> None:
            for key, child in comp._lk_children():
                if isinstance(child, LightningWork):
                    out.append((child.name or key, child))
                elif is_structure(child):
                    visit(child, flows)  # a structure's Works are its flow's
                elif flows and isinstance(child, LightningFlow):
                    out.extend(child.named_works(recurse))

        visit(self, recurse)
        return out

    @property
    def state(self) -> dict[str, Any]:
        """The tree's state: ``{"vars": ..., "flows": {name: ...}, "works": {name: {"vars": ...}}}``."""
        from ._work import LightningWork
        from .structures import is_structure

        flows: dict[str, Any] = {}
        works: dict[str, Any] = {}
        structures: dict[str, Any] = {}
        for key, child in self._lk_children():
            if isinstance(child, LightningWork):
                works[key] = child.state
            elif isinstance(child, LightningFlow):
                flows[key] = child.state
            elif is_structure(child):
                structures[key] = child.state  # type: ignore[attr-defined]
        out = {"vars": self._lk_vars(), "flows": flows, "works": works}
        if structures:
            out["structures"] = structures
        return out
