"""``AppStateWatcher`` for ``PanelFrontend``'s pages, as Lightning App's: a ``param.Parameterized``
whose ``state`` is the flow's ``AppState``, replaced when the flow's state changes, so that what
depends on ``watcher.param.state`` (``pn.depends``, ``pn.bind``) is drawn again.

Lightning App pushed each change over a websocket of its server; here each browser session reads the
state again every ``EVERY_MS`` (the page's own periodic callback), and replaces ``state`` only when it
changed. Writes (``watcher.state.count += 1``) go to the run's flow at once, as ``AppState``'s do.
Only the Panel launcher imports this module (it needs param, which comes with panel).
"""

from __future__ import annotations

import param

from ..utilities.state import AppState
from ._launcher import flow_state

EVERY_MS = 1000


class AppStateWatcher(param.Parameterized):
    state = param.ClassSelector(class_=AppState, doc="the flow's state, read again when it changes")


def watch() -> AppStateWatcher:
    """A watcher of the frontend's flow for this browser session, kept current while it lasts."""
    import panel as pn

    watcher = AppStateWatcher(state=flow_state())

    def refresh() -> None:
        fresh, shown = flow_state(), watcher.state
        if shown is None or fresh._state != shown._state:
            watcher.state = fresh

    pn.state.add_periodic_callback(refresh, period=EVERY_MS)
    return watcher


__all__ = ["AppStateWatcher", "watch"]
