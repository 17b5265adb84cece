"""``JustPyFrontend``: a flow's UI written with JustPy (needs justpy), as Lightning App's.

Accepted so that an app using it loads (its tab says that lightning-kernel does not serve it); without
justpy, making one raises ``MissingExtra`` naming what to install, where Lightning App raised it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .frontend import Frontend, check_own_process_ui


class JustPyFrontend(Frontend):
    """A UI whose page is ``render_fn(get_state)`` (it returns the JustPy page function)."""

    def __init__(self, render_fn: Callable[..., Any]) -> None:
        check_own_process_ui("JustPyFrontend", "justpy", "justpy", "render_fn", render_fn, "a function")
        super().__init__()
        self.render_fn = render_fn


__all__ = ["JustPyFrontend"]
