"""``Frontend``: the base of a flow's UI (``configure_layout()`` returns one), as in Lightning App."""

from __future__ import annotations

from typing import Any


class Frontend:
    """A flow's UI. The kernel's server shows it on the run's page (``/view``); ``flow`` is the flow
    whose ``configure_layout()`` returned it, set when the layout is read."""

    def __init__(self) -> None:
        self.flow: Any = None

    def start_server(self, host: str, port: int, root_path: str = "") -> None:
        """Lightning App's hook, not called here: the kernel's own server serves a static frontend, and
        the kernel that hosts the run starts the server of a ``StreamlitFrontend`` or ``PanelFrontend``
        (``_frontend_serve``), with the run's HTTP server, and stops it with the run."""

    def stop_server(self) -> None:
        """See ``start_server``."""


def check_own_process_ui(
    kind: str, package: str, install: str, argument: str, value: Any, takes: str
) -> None:
    """A frontend drawn in a process of its own: ``MissingExtra`` without ``package``, and a
    ``TypeError`` for a method as ``argument`` (its flow object is not in that process)."""
    import importlib.util
    import inspect

    from ..errors import MissingExtra

    if importlib.util.find_spec(package) is None:
        raise MissingExtra(kind, package, install)
    if inspect.ismethod(value):
        raise TypeError(
            f"{kind}({argument}=...) takes {takes}, not a method: the UI runs in a process of its own, "
            "where the flow object is not"
        )


__all__ = ["Frontend"]
