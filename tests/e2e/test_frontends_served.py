"""A flow's ``StreamlitFrontend`` and ``PanelFrontend`` served by the kernel that hosts the run, end to
end: `run app` starts their servers (real ``streamlit run`` and ``panel serve`` processes), the layout
API and the run's page lead to them, a server that dies is said so on its tab, and none outlives the
command. Without the package, making the frontend still raises ``MissingExtra``.

The tests that need streamlit or panel skip, saying so, when it is not installed, except under CI,
where they must run. The browser half (a click in the streamlit page that changes the flow) is in
tests/ui/test_frontends_ui.py.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel._layout import live_frontends, tabs_of
from lightning_kernel.errors import MissingExtra
from test_flow_api import Running

TABS = """
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.frontend import StreamlitFrontend


def render(state):
    import streamlit as st

    st.write(f"counter: {state.counter}")


class Counter(LightningFlow):
    def __init__(self):
        super().__init__()
        self.counter = 0

    def configure_layout(self):
        return StreamlitFrontend(render_fn=render)


class Anonymous(LightningFlow):
    def configure_layout(self):
        return StreamlitFrontend(render_fn=lambda state: None)


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.kept = Counter()
        self.doomed = Counter()
        self.anonymous = Anonymous()

    def configure_layout(self):
        return [
            {"name": "kept", "content": self.kept},
            {"name": "doomed", "content": self.doomed},
            {"name": "anonymous", "content": self.anonymous},
        ]


app = LightningApp(Root())
"""

PANEL = """
import panel as pn

from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.frontend import PanelFrontend

SHOWN = "visits"  # a global of the app file, there as in the kernel


def page(watcher):
    watcher.state.visits += 1
    return pn.pane.Markdown(f"{SHOWN}: {watcher.state.visits}")


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.visits = 0

    def configure_layout(self):
        return PanelFrontend(page)


app = LightningApp(Root())
"""


def need(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        why = f"{package} is not installed (pip install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"the served frontends' tests must run in CI: {why}")
        pytest.skip(why)


def wait_tabs(http: httpx.Client, ready: Any, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The run's layout tabs by name, once ``ready(tabs)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        got = http.get("/api/runs/latest/layout")
        tabs = {t["name"]: t for t in got.json().get("tabs", [])} if got.status_code == 200 else {}
        if ready(tabs):
            return tabs
        assert time.monotonic() < deadline, f"the layout never got there: {got.text}"
        time.sleep(0.1)


def frontend_url(http: httpx.Client, tab: dict[str, Any], timeout: float = 30) -> str:
    """Where the kernel's page of a frontend leads once its server accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        got = http.get(tab["url"])
        if got.status_code == 307:
            assert got.headers["x-frame-options"] == "SAMEORIGIN"  # the run's page frames it
            return str(got.headers["location"])
        assert got.status_code == 200 and "starting the server of" in got.text, got.text
        assert time.monotonic() < deadline, f"{tab['name']}'s server never accepted a connection"
        time.sleep(0.1)


def server_pid(port: int) -> int:
    """The pid of the frontend server that listens on ``port`` (from its command line)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--server.port" in args and args[args.index(b"--server.port") + 1] == str(port).encode():
                return int(entry)
    raise AssertionError(f"no streamlit server on port {port}")


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
        except OSError:
            return True
        if state == "Z":  # exited; its new parent reaps it
            return True
        time.sleep(0.05)
    return False


def test_streamlit_tabs_are_served_a_dead_one_says_so_and_none_outlives_ctrl_c(lk):
    need("streamlit")
    running = Running(lk, lk.app(TABS))
    try:
        url, _ = running.url()
        with httpx.Client(base_url=url, timeout=10) as http:
            tabs = wait_tabs(http, lambda t: {"kept", "doomed", "anonymous"} <= set(t))
            assert tabs["kept"]["kind"] == "frontend" and tabs["kept"]["url"].endswith("/ui/root.kept/")
            # A render function its server could not import is refused, saying why.
            assert tabs["anonymous"]["kind"] == "note"
            assert "StreamlitFrontend of root.anonymous is not served" in tabs["anonymous"]["note"]
            assert "<lambda>" in tabs["anonymous"]["note"] and "top level" in tabs["anonymous"]["note"]

            kept, doomed = frontend_url(http, tabs["kept"]), frontend_url(http, tabs["doomed"])
            assert kept.startswith("http://127.0.0.1:") and kept != doomed
            health = httpx.get(f"{kept}_stcore/health", timeout=10)
            assert health.status_code == 200 and health.text == "ok"

            # One server dies: its tab says so, with its exit code and its last lines.
            doomed_pid = server_pid(int(doomed.rsplit(":", 1)[1].strip("/")))
            os.kill(doomed_pid, signal.SIGKILL)
            tabs = wait_tabs(http, lambda t: t["doomed"]["kind"] == "note")
            note = tabs["doomed"]["note"]
            assert "StreamlitFrontend of root.doomed ended with exit code -9" in note, note
            assert "You can now view your Streamlit app" in note and "root.doomed.log" in note
            assert http.get(tabs["kept"]["url"]).status_code == 307  # the other one goes on
            assert http.get("/runs/latest/ui/root.doomed/").status_code == 503

        kept_pid = server_pid(int(kept.rsplit(":", 1)[1].strip("/")))
        running.proc.send_signal(signal.SIGINT)
        code, _, err = running.finish(timeout=30)
        assert code == 130, err
        assert gone(kept_pid), f"the streamlit server {kept_pid} outlived its kernel"
    finally:
        running.kill()


def test_a_panel_function_gets_the_flows_live_state_and_writes_to_it(lk):
    need("panel")
    running = Running(lk, lk.app(PANEL))
    try:
        url, _ = running.url()
        with httpx.Client(base_url=url, timeout=10) as http:
            tabs = wait_tabs(http, lambda t: "root" in t)
            page = frontend_url(http, tabs["root"])
            assert page.endswith("/_launcher_panel")
            # Bokeh makes a session, and so runs the function, for each load of the page.
            for visit in (1, 2):
                got = httpx.get(page, timeout=30)
                assert got.status_code == 200 and "bokeh" in got.text.lower()
                assert lk.state()["root"]["vars"]["visits"] == visit
    finally:
        running.kill()


def test_without_the_package_the_frontend_still_raises_missing_extra(monkeypatch):
    from lightning_kernel.frontend import PanelFrontend, StreamlitFrontend

    def render(state: Any) -> None:
        pass

    class Root(LightningFlow):
        def configure_layout(self) -> Any:
            return StreamlitFrontend(render_fn=render)

    # A None in sys.modules is how the import system says a module is not there.
    monkeypatch.setitem(sys.modules, "streamlit", None)
    monkeypatch.setitem(sys.modules, "panel", None)
    with pytest.raises(MissingExtra, match=r"pip install 'lightning-kernel\[panel\]'"):
        PanelFrontend(render)
    app = LightningApp(Root())
    (tab,) = tabs_of(app, "/runs/r")
    assert tab.kind == "note" and "raised MissingExtra" in tab.note
    assert "StreamlitFrontend needs streamlit" in tab.note and "lightning-kernel[streamlit]" in tab.note
    assert live_frontends(app) == []  # and no server is started for it
