"""The script ``StreamlitFrontend``'s server runs (``streamlit run``), at each rerun (a page load, a
click, a widget changed): the flow's ``render_fn(state)``.

``state`` is a new ``AppState`` of the flow at each rerun, so the page shows the flow's state as it is
then; setting one of its attributes (``state.counter += 1``) is a request to the run's flow, recorded
as an event like any other, as Lightning App's ``AppState`` sent its changes to the app. The app file
is imported once per server (``_launcher``), not at each rerun.
"""

from __future__ import annotations


def main() -> None:
    from lightning_kernel.frontend._launcher import flow_state, render_function, unshadow

    unshadow(__file__)
    render_function()(flow_state())


if __name__ == "__main__":
    main()
