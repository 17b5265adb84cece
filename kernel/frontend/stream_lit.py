"""``StreamlitFrontend``: a flow's UI written with Streamlit (needs streamlit)."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import MissingExtra
from .frontend import Frontend


class StreamlitFrontend(Frontend):
    """A UI drawn by ``render_fn(state)`` with Streamlit. Needs streamlit (``pip install streamlit``):
    without it, making one raises ``MissingExtra``."""

    def __init__(self, render_fn: Callable[..., Any]) -> None:
        if importlib.util.find_spec("streamlit") is None:
            raise MissingExtra("StreamlitFrontend", "streamlit", "lightning-kernel[streamlit]")
        super().__init__()
        if inspect.ismethod(render_fn):
            raise TypeError(
                "StreamlitFrontend(render_fn=...) takes a function, not a method: the UI runs in a "
                "process of its own, where the flow object is not"
            )
        self.render_fn = render_fn


__all__ = ["StreamlitFrontend"]
