"""``JustPyFrontend``: a flow's UI written with JustPy (needs justpy), as Lightning App's.

Accepted so that an app using it loads (its tab says that lightning-kernel does not serve it); without
justpy, making one raises ``MissingExtra`` naming what to install, where Lightning App raised it too.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import MissingExtra
from .frontend import Frontend


class JustPyFrontend(Frontend):
    """A UI whose page is ``render_fn(get_state)`` (it returns the JustPy page function)."""

    def __init__(self, render_fn: Callable[..., Any]) -> None:
        if importlib.util.find_spec("justpy") is None:
            raise MissingExtra("JustPyFrontend", "justpy", "justpy")
        super().__init__()
        if inspect.ismethod(render_fn):
            raise TypeError(
                "JustPyFrontend(render_fn=...) takes a function, not a method: the UI runs in a "
                "process of its own, where the flow object is not"
            )
        self.render_fn = render_fn


__all__ = ["JustPyFrontend"]
