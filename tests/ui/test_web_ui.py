"""The web UI in a real browser, on the page of a live `lightning-kernel run app`.

One app runs for the module: a flow with a Work that waits on a gate file (so that the page sees it
go from running to succeeded without a reload) and a parallel Work that counts and prints forever
until the run is stopped from the page. Every wait is on the page (Playwright's expectations) or on
the app's output, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_flow_api import Running

APP = """
import os
import time

from lightning_kernel import CloudCompute, LightningApp, LightningFlow, LightningWork

GATE = {gate!r}


class Prep(LightningWork):
    def __init__(self):
        super().__init__()
        self.ready = False
        self.settings = {{"lr": 0.1, "layers": [8, 4], "name": "small"}}
        self.report = "lit://report.txt"

    def run(self):
        print("prep waits for the gate", flush=True)
        while not os.path.exists(GATE):
            time.sleep(0.05)
        with open(self.report, "w") as f:
            f.write("prepared 3 shards\\n")
        self.ready = True


class Ticker(LightningWork):
    def __init__(self):
        super().__init__(parallel=True, cloud_compute=CloudCompute("cpu-small"))
        self.step = 0
        self.loss = 1.0

    def run(self):
        while True:
            self.step += 1
            self.loss = round(1.0 / self.step, 4)
            print(f"tick {{self.step}}", flush=True)
            time.sleep(0.1)


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.prep = Prep()
        self.ticker = Ticker()
        self.phase = "prep"

    def run(self):
        self.prep.run()
        if self.prep.ready:
            self.phase = "ticking"
            self.ticker.run()


app = LightningApp(Root())
"""

TIMEOUT_MS = 30_000


def _e2e_conftest() -> Any:
    """The e2e suite's conftest (its ``LK``, the runner of the real command), under a name of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_lk_e2e_conftest", Path(__file__).parents[1] / "e2e" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    lk = _e2e_conftest().LK(tmp_path_factory.mktemp("ui"))
    gate = lk.dir / "gate"
    running = Running(lk, lk.app(APP.format(gate=str(gate))))
    try:
        url, token = running.url()
        run_id = httpx.get(f"{url}/api/runs/latest", timeout=10).json()["id"]
        yield {"lk": lk, "running": running, "url": url, "token": token, "run": run_id, "gate": gate}
    finally:
        running.kill()


@pytest.fixture(scope="module")
def page(browser: Any, served: dict[str, Any]) -> Iterator[Any]:
    """A browser tab that opened the URL `run app` printed (so it holds the token's cookie)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{served['url']}/view?token={served['token']}")
    yield tab
    context.close()
    assert not errors, errors


def test_the_run_page_shows_the_tree_and_a_status_change_without_reload(page, served, shots):
    from playwright.sync_api import expect

    # The printed URL took the token into a cookie, and the address bar lost it.
    assert page.url == f"{served['url']}/view"
    expect(page.locator("header h1")).to_have_text("app")
    prep = page.locator('[data-component="root.prep"] > .node-row .badge')
    ticker = page.locator('[data-component="root.ticker"] > .node-row')
    expect(prep).to_have_attribute("data-status", "running")
    expect(ticker).to_contain_text("cpu-small")  # its CloudCompute
    page.screenshot(path=str(shots / "run-page.png"), full_page=True)
    served["gate"].write_text("go")
    expect(prep).to_have_attribute("data-status", "succeeded")  # live, from the event stream
    expect(ticker.locator(".badge")).to_have_attribute("data-status", "running")
    expect(ticker).to_contain_text("local")  # its executor
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "/_lk/ui/favicon.svg")


def test_a_persisted_path_lists_its_files_and_downloads_them(page, served, shots):
    from playwright.sync_api import expect

    page.locator('[data-component="root.prep"] > .node-row').click()
    page.get_by_role("button", name="paths", exact=True).click()
    page.get_by_role("button", name=re.compile(r"^files · ")).click()
    link = page.get_by_role("link", name="lit://report.txt")
    expect(link).to_be_visible()
    expect(page.locator("table.files")).to_contain_text("sha256")
    page.screenshot(path=str(shots / "paths.png"))
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "report.txt"
    assert Path(download.path()).read_text() == "prepared 3 shards\n"


def test_a_works_logs_tail_live(page, served, shots):
    from playwright.sync_api import expect

    page.locator('[data-component="root.ticker"] > .node-row').click()
    page.get_by_role("button", name="logs", exact=True).click()
    lines = page.get_by_role("list", name="log lines")
    expect(lines).to_contain_text("tick 1")
    expect(lines).to_contain_text(re.compile(r"tick [2-9]\d"))  # lines printed after the page opened
    page.screenshot(path=str(shots / "logs.png"))


def test_dragging_the_scrubber_shows_the_state_of_an_old_event(page, served, shots):
    from playwright.sync_api import expect

    page.locator('[data-component="root.ticker"] > .node-row').click()
    page.get_by_role("button", name="state", exact=True).click()
    step = page.locator('.state-view [data-attr="step"] .val')
    expect(step).to_have_text(re.compile(r"^[1-9]\d+$"))  # ten steps and more
    scrubber = page.get_by_role("slider", name="time travel: the event shown")
    box = scrubber.bounding_box()
    assert box is not None
    # Drag the thumb from the live end to two fifths of the run.
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(page.get_by_role("button", name="● live")).to_have_attribute("aria-pressed", "false")
    # The keyboard moves it one event at a time.
    scrubber.focus()
    before = int(page.locator(".scrub-at").get_attribute("data-seq") or 0)
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".scrub-at")).not_to_have_attribute("data-seq", str(before))
    seq = int(page.locator(".scrub-at").get_attribute("data-seq") or 0)
    assert 0 < seq < before
    shown = int(step.inner_text())
    truth = served["lk"].state(served["run"], at=seq)
    assert shown == truth["root"]["works"]["ticker"]["vars"]["step"], (seq, shown)
    assert shown < 10
    page.screenshot(path=str(shots / "time-travel.png"))
    # The event list shows the same event, selected; "live" snaps back.
    page.get_by_role("button", name="events", exact=True).click()
    expect(page.locator(f'.event-row.on[data-seq="{seq}"]')).to_be_visible()
    page.get_by_role("combobox", name="events of kind").select_option("work.state_changed")
    expect(page.locator(".event-row").first).to_contain_text("work.state_changed")
    page.screenshot(path=str(shots / "events.png"))
    # The diff of that event and the newest one (GET /diff).
    page.get_by_role("button", name="diff from this event").click()
    page.get_by_role("button", name="● live").click()
    expect(page.get_by_role("textbox", name="diff from event")).to_have_value(str(seq))
    page.get_by_role("button", name="Compare").click()
    expect(page.locator(".diff-result")).to_have_attribute("data-same", "false")
    expect(page.locator(".diff-result")).to_contain_text("root.ticker")
    page.screenshot(path=str(shots / "diff.png"))
    page.get_by_role("button", name="● live").click()
    page.get_by_role("navigation", name="system views").get_by_role("button", name="root.ticker").click()
    expect(step).to_have_text(re.compile(r"^[1-9]\d+$"))


def test_an_attribute_is_plotted_from_its_history(page, served, shots):
    from playwright.sync_api import expect

    page.locator('[data-component="root.ticker"] > .node-row').click()
    page.get_by_role("button", name="chart", exact=True).click()
    page.get_by_role("combobox", name="attribute to plot").select_option("loss")
    expect(page.locator(".charts [data-points]")).to_have_attribute("data-points", re.compile(r"^[1-9]\d+$"))
    expect(page.locator(".chart canvas")).to_be_visible()
    chart = page.locator(".chart")
    expect(chart).to_have_attribute("data-mark", "")  # live: no event marked
    # Off live, the scrubber's event is marked on the chart (a line at its seq).
    page.get_by_role("slider", name="time travel: the event shown").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("button", name="● live")).to_have_attribute("aria-pressed", "false")
    seq = page.locator(".scrub-at").get_attribute("data-seq")
    expect(chart).to_have_attribute("data-mark", seq or "?")
    page.screenshot(path=str(shots / "chart.png"))
    page.get_by_role("button", name="● live").click()
    expect(chart).to_have_attribute("data-mark", "")


def test_the_runs_page_lists_the_run_live(browser, served, shots):
    from playwright.sync_api import expect

    context = browser.new_context(color_scheme="dark")  # the theme follows the system's
    try:
        runs = context.new_page()
        runs.set_default_timeout(TIMEOUT_MS)
        runs.goto(f"{served['url']}/view?runs=1")
        row = runs.locator(f'tr[data-run="{served["run"]}"]')
        expect(row.locator(".badge")).to_have_attribute("data-status", "running")
        runs.get_by_role("combobox", name="filter by status").select_option("running")
        expect(row).to_be_visible()
        runs.get_by_role("searchbox", name="filter by name").fill("no such run")
        expect(row).to_have_count(0)
        runs.get_by_role("searchbox", name="filter by name").fill("app")
        expect(row).to_be_visible()
        runs.screenshot(path=str(shots / "runs.png"))
        # A figure, not a check: the run's page, from the request to its tree drawn from its events.
        started = time.monotonic()
        runs.goto(f"{served['url']}/runs/{served['run']}/view")
        expect(runs.locator('[data-component="root.ticker"]')).to_be_visible()
        drawn = time.monotonic() - started
        nav = runs.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
        (shots / "timings.json").write_text(
            json.dumps({"run_page_tree_drawn_ms": round(drawn * 1000), "dom_content_loaded_ms": round(nav)})
        )
    finally:
        context.close()


def test_actions_need_the_token_and_stop_ends_the_run(browser, page, served, shots):
    from playwright.sync_api import expect

    # A browser that never opened the printed URL reads (loopback) but cannot stop the run.
    context = browser.new_context()
    try:
        stranger = context.new_page()
        stranger.set_default_timeout(TIMEOUT_MS)
        stranger.goto(f"{served['url']}/runs/{served['run']}/view")
        stranger.get_by_role("button", name="Stop", exact=True).click()
        stranger.get_by_role("dialog").get_by_role("button", name="Stop").click()
        expect(stranger.get_by_role("status")).to_contain_text("token")
    finally:
        context.close()
    assert httpx.get(f"{served['url']}/api/runs/{served['run']}", timeout=10).json()["status"] == "running"

    page.get_by_role("button", name="Stop", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Stop this run?")
    page.screenshot(path=str(shots / "stop-confirm.png"))
    dialog.get_by_role("button", name="Stop").click()
    expect(page.locator("header .badge")).to_have_attribute("data-status", "stopped")
    page.screenshot(path=str(shots / "stopped.png"))
    _, _, err = served["running"].finish()
    assert served["lk"].json_lines("runs")[0]["status"] == "stopped", err
