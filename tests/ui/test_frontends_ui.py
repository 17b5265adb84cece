"""A flow's ``StreamlitFrontend`` in a real browser, on the page of a live `lightning-kernel run app`:
the run's page frames the streamlit server the kernel started, the page shows the flow's state, and a
click in it changes the flow's state (as Lightning App's ``AppState`` did), which the flow's next
iteration sees and the page's next rerun shows.

Skipped, saying so, without streamlit (or chromium), except under CI, where it must run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_flow_api import Running

APP = """
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.frontend import StreamlitFrontend

LABEL = "add one"  # a global of the app file: the launcher runs the file as the kernel did


def render(state):
    import streamlit as st

    st.button("refresh")
    if st.button(LABEL):
        state.counter += 1
    st.write(f"counter: {state.counter}")
    st.write(f"twice: {state.twice}")


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.counter = 0
        self.twice = 0

    def run(self):
        self.twice = 2 * self.counter

    def configure_layout(self):
        return StreamlitFrontend(render_fn=render)


app = LightningApp(Root())
"""

TIMEOUT_MS = 30_000


def _e2e_conftest() -> Any:
    """The e2e suite's conftest (its ``LK``, the runner of the real command), under a name of its own."""
    spec = importlib.util.spec_from_file_location(
        "_lk_e2e_conftest", Path(__file__).parents[1] / "e2e" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_click_in_the_streamlit_page_changes_the_flow(browser, tmp_path, shots):
    from playwright.sync_api import expect

    if importlib.util.find_spec("streamlit") is None:
        why = "streamlit is not installed (pip install streamlit)"
        if os.environ.get("CI"):
            pytest.fail(f"the served frontends' tests must run in CI: {why}")
        pytest.skip(why)
    lk = _e2e_conftest().LK(tmp_path)
    running = Running(lk, lk.app(APP))
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        url, token = running.url()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/view?token={token}")
        page.locator('[data-layout-tab="root"]').click()
        ui = page.frame_locator('iframe[title="root"]')
        expect(ui.get_by_text("counter: 0")).to_be_visible()

        ui.get_by_role("button", name="add one").click()
        expect(ui.get_by_text("counter: 1")).to_be_visible()
        deadline = time.monotonic() + 20
        while (vars_ := lk.state()["root"]["vars"])["twice"] != 2:
            assert time.monotonic() < deadline, f"the flow never saw the click: {vars_}"
            time.sleep(0.2)
        assert vars_["counter"] == 1

        # The next rerun reads the state again: what the flow's own iteration made of the click.
        ui.get_by_role("button", name="refresh").click()
        expect(ui.get_by_text("twice: 2")).to_be_visible()
        page.screenshot(path=str(shots / "streamlit-frontend.png"))
    finally:
        context.close()
        running.kill()
