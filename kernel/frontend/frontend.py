"""``Frontend``: the base of a flow's UI (``configure_layout()`` returns one), as in Lightning App."""

from __future__ import annotations

from typing import Any


class Frontend:
    """A flow's UI. The kernel's server shows it on the run's page (``/view``); ``flow`` is the flow
    whose ``configure_layout()`` returned it, set when the layout is read."""

    def __init__(self) -> None:
        self.flow: Any = None

    def start_server(self, host: str, port: int, root_path: str = "") -> None:
        """Lightning App started a server per frontend; the kernel's own server serves them."""

    def stop_server(self) -> None:
        """See ``start_server``."""


__all__ = ["Frontend"]
