"""The script ``PanelFrontend(function)``'s server runs (``panel serve``), once per browser session:
the flow's function, called with an ``AppStateWatcher``-like object when it takes an argument, as in
Lightning App (``_state_watcher``: its ``state`` is the flow's ``AppState``, read again every second,
and its ``param.state`` what Panel's ``pn.depends``/``pn.bind`` watch).

As in Lightning App the function makes its page servable itself (``.servable()``); one that returns
its page instead, and made nothing servable, has it served.
"""

from __future__ import annotations

import inspect


def main() -> None:
    import panel as pn
    from lightning_kernel.frontend._launcher import render_function, unshadow
    from lightning_kernel.frontend._state_watcher import watch

    unshadow(__file__)
    render = render_function()
    page = render(watch()) if inspect.signature(render).parameters else render()
    document = pn.state.curdoc
    if page is not None and document is not None and not document.roots:
        pn.panel(page).servable()


if __name__.startswith("bokeh_app_"):  # bokeh runs the script under that name, once per session
    main()
