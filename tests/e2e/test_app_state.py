"""Lightning App's ``AppState``: a UI reads a running app's state and sets its flows' attributes."""

from __future__ import annotations

import json
import re

import pytest
from lightning_kernel.errors import KernelError
from lightning_kernel.utilities.state import AppState, headers_for

APP = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Counter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.count = 0
    def run(self):
        self.count = 3

class Panel(LightningFlow):
    def __init__(self):
        super().__init__()
        self.message = "Hello World!"
        self.should_print = False

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.printed = 0
        self._ready = False
        self.panel = Panel()
        self.counter = Counter()
    def run(self):
        self.counter.run()
        if self.counter.count == 3 and not self._ready:
            self._ready = True
            print("ready", flush=True)
        if self.panel.should_print:
            self.printed += 1
            print(f"{self.printed}: {self.panel.message}", flush=True)
            self.panel.should_print = False
        if self.printed == 2:
            self.stop("printed twice")

app = LightningApp(Root())
"""


def test_a_ui_reads_the_state_and_sets_a_flow_attribute_through_app_state(lk, monkeypatch):
    proc = lk.popen("run", "app", lk.app(APP))
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = ""
        for line in proc.stderr:
            found = re.search(r"View it in your browser: (http://127\.0\.0\.1:\d+)/view", line)
            if found:
                url = found.group(1)
                break
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        monkeypatch.setenv("LK_DATA_DIR", str(lk.dir / "data"))
        state = AppState()  # finds the server and its token in the data dir
        assert state._link.url == url
        assert state.printed == 0 and state.panel.message == "Hello World!"
        assert state.counter.count == 3 and state.works["counter"].vars == {"count": 3}
        assert headers_for({}) == {
            "Authorization": f"Bearer {(lk.dir / 'data' / 'server.token').read_text()}"
        }

        with pytest.raises(KernelError, match="no public attribute 'nope'"):
            state.panel.nope = 1
        with pytest.raises(KernelError, match="HTTP 401"):
            AppState(url=url, token="").panel.should_print = True  # writes need the token
        state.panel.should_print = True
        assert proc.stdout.readline().strip() == "1: Hello World!"
        state.panel.message = "Bye"
        state.panel.should_print = True
        assert proc.stdout.readline().strip() == "2: Bye"
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    sets = [
        e["body"]["data"]
        for e in lk.json_lines("history", "latest")
        if e["type"] == "flow.request_received" and e["body"]["route"] == "/__lk__/state"
    ]
    assert sets[-3:] == [
        {"component": "root.panel", "changes": {"should_print": True}},
        {"component": "root.panel", "changes": {"message": "Bye"}},
        {"component": "root.panel", "changes": {"should_print": True}},
    ], json.dumps(sets)
    assert lk("replay", "latest", check=True).stdout.endswith("no difference\n")
