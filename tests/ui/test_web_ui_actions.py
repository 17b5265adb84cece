"""Resume and fork from the web UI, in a real browser, on `lightning-kernel serve`.

A run interrupted by SIGTERM under `run app` is opened on a server's page: Resume (confirmed) carries
it on to its end, then Fork at an event chosen in the event list (confirmed) starts a new run from
that event, and the page moves to it. The Work counts, then waits on a gate file, so the page sees
each status change; every wait is on the page or on the recorded state, never a fixed sleep.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from _fixtures._ports import free_port, wait_port
from _guard import wait_until, work_var
from test_web_ui import TIMEOUT_MS, _e2e_conftest

APP = """
import os
import time

from lightning_kernel import LightningApp, LightningFlow, LightningWork

GATE = {gate!r}


class Count(LightningWork):
    def __init__(self):
        super().__init__()
        self.n = 0

    def run(self):
        while self.n < 5:
            self.n += 1
            time.sleep(0.05)
        while not os.path.exists(GATE):
            time.sleep(0.05)


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.count = Count()

    def run(self):
        self.count.run()
        if self.count.has_succeeded:
            self.stop("counted")


app = LightningApp(Root())
"""


@pytest.fixture
def interrupted_on_a_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    lk = _e2e_conftest().LK(tmp_path)
    gate = lk.dir / "gate"
    kernel = lk.popen("run", "app", lk.app(APP.format(gate=str(gate))), "--no-ui")
    wait_until("the Work counts to 5", lambda: work_var(lk, "root.count", "n") == 5, proc=kernel)
    kernel.send_signal(signal.SIGTERM)
    _, err = kernel.communicate(timeout=60)
    [run] = lk.json_lines("runs")
    assert run["status"] == "interrupted", err
    port = free_port()
    server = lk.popen("serve", "--port", str(port))
    try:
        wait_port(port, timeout=60)
        token = (lk.dir / "data" / "server.token").read_text().strip()
        yield {"lk": lk, "url": f"http://127.0.0.1:{port}", "token": token, "run": run["id"], "gate": gate}
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_resume_then_fork_at_an_event_from_the_page(browser, interrupted_on_a_server, shots):
    from playwright.sync_api import expect

    s = interrupted_on_a_server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{s['url']}/runs/{s['run']}/view?token={s['token']}")
        badge = page.locator("header .badge")
        expect(badge).to_have_attribute("data-status", "interrupted")

        page.get_by_role("button", name="Resume", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Resume this run?")
        page.screenshot(path=str(shots / "resume-confirm.png"))
        dialog.get_by_role("button", name="Resume").click()
        expect(badge).to_have_attribute("data-status", "running")  # live, on the server
        s["gate"].write_text("go")
        expect(badge).to_have_attribute("data-status", "succeeded")  # the flow ended it: "counted"
        expect(page.get_by_role("button", name="Resume", exact=True)).to_have_count(0)

        # Choose the event where the Work had counted to 3 in the list: the fork starts from there.
        history = s["lk"].json_lines("history", s["run"])
        at = next(
            e["seq"]
            for e in history
            if e["type"] == "work.state_changed" and e["body"]["changes"].get("n") == 3
        )
        page.get_by_role("button", name="events", exact=True).click()
        length = page.locator("header .run-duration").inner_text()
        row = page.locator(f'.event-row[data-seq="{at}"]')
        row.click()
        expect(row).to_have_class(re.compile(r"\bon\b"))
        expect(page.locator("header .run-duration")).to_have_text(length)  # the run's, not the event's
        fork = page.get_by_role("button", name=f"Fork at #{at}")
        fork.click()
        expect(dialog).to_contain_text(f"up to #{at}")
        page.screenshot(path=str(shots / "fork-confirm.png"))
        dialog.get_by_role("button", name="Fork").click()

        # The page is the fork's now: a run of its own, live, that ends once its Work ends.
        page.wait_for_url(re.compile(r"/runs/(?!" + re.escape(s["run"]) + r")[^/]+/view$"))
        forked = page.url.rsplit("/", 2)[1]
        expect(page.locator('[data-component="root.count"]')).to_be_visible()
        expect(badge).to_have_attribute("data-status", "succeeded")
        page.screenshot(path=str(shots / "forked.png"))
    finally:
        context.close()
    events = s["lk"].json_lines("history", forked)
    marks = [e for e in events if e["type"] == "run.forked"]
    assert [(m["body"]["origin"], m["body"]["at"]) for m in marks] == [(s["run"], at)]
    assert events[-1]["type"] == "run.ended"
    assert httpx.get(f"{s['url']}/api/runs/{forked}", timeout=10).json()["status"] == "succeeded"
    assert s["lk"].state(forked)["root"]["works"]["count"]["vars"]["n"] == 5
