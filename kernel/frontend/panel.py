"""``PanelFrontend``: a flow's UI written with Panel (needs panel)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from ..errors import MissingExtra
from .frontend import Frontend


class PanelFrontend(Frontend):
    """A UI drawn by ``entry_point`` (a function, or the path of a script) with Panel. Needs panel
    (``pip install panel``): without it, making one raises ``MissingExtra``."""

    def __init__(self, entry_point: Callable[..., Any] | str) -> None:
        if importlib.util.find_spec("panel") is None:
            raise MissingExtra("PanelFrontend", "panel", "lightning-kernel[panel]")
        super().__init__()
        self.entry_point = entry_point


__all__ = ["PanelFrontend"]
