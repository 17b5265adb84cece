"""The web UI on a long run, in Debian's Chromium: load, the virtualised event list, time travel.

Builds a finished run of ``--events`` events (100,000) with ``replay.py``'s generator (a flow keeping
two Works busy, a cached Work now and then), written through the store as the recorder writes, lets
a fresh NATS adopt the database (``lightning-kernel db adopt-stream``), serves it (``lightning-kernel
serve``) and opens the run's page with Playwright. It prints:

- the page's load: the tree drawn, every event loaded (the event list says "N of N"), the JS heap;
- scrolling the event list: frame times while it scrolls from the top to the end, 120 frames;
- time travel: a key press on the scrubber to the state shown, and a jump to the first event;
- filtering the list by kind, and back.

    python bench/ui_history.py [--events 100000]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from _fixtures._ports import free_port, wait_port  # noqa: E402

CHROMIUM = os.environ.get("LK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

SCROLL = """async () => {
  const list = document.querySelector('[role=list][aria-label=events]');
  const frames = [];
  let last = performance.now();
  for (let i = 1; i <= 120; i++) {
    list.scrollTop = (list.scrollHeight - list.clientHeight) * i / 120;
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return frames;
}"""


def _replay() -> Any:
    spec = importlib.util.spec_from_file_location("_bench_replay", HERE / "replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(data: Path, n: int) -> float:
    """The run's ``n`` events (the last one its end) in ``data``'s SQLite database; seconds taken."""
    from lightning_kernel._recorder import Recorder
    from lightning_kernel._records import EventRecord
    from lightning_kernel._sql import open_store

    replay = _replay()
    data.mkdir(parents=True)
    store = open_store(f"sqlite:///{data / 'kernel.db'}")
    recorder = Recorder(cast(Any, None), store)
    ended = EventRecord(
        n, f"e{n}", replay.RUN, "run.ended", 1, 1.7e9 + n / 1000, "kernel", {"status": "succeeded"}
    )
    events = itertools.chain(replay.run_events(n - 1), [ended])
    started = time.perf_counter()
    while batch := list(itertools.islice(events, 1000)):
        store.write(recorder._fold_batch(batch))
    store.close()
    return time.perf_counter() - started


def lk(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightning_kernel", *args]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def say(what: str, figure: str) -> None:
    print(f"  {what:<46} {figure:>14}")


def measure(url: str, token: str, run: str, n: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(300_000)
        started = time.monotonic()
        page.goto(f"{url}/runs/{run}/view?token={token}")
        expect(page.locator('[data-component="root.train_0"]')).to_be_visible()
        tree = time.monotonic() - started
        page.get_by_role("button", name="events", exact=True).click()
        shown = page.locator(".events [data-shown]")
        expect(shown).to_have_text(f"{n} of {n}")
        loaded = time.monotonic() - started
        heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
        say("tree drawn", ms(tree))
        say(f"all {n:,} events loaded (the list says so)", ms(loaded))
        say("JS heap used", f"{heap / 2**20:.0f} MiB")

        frames = page.evaluate(SCROLL)[1:]
        q = statistics.quantiles(frames, n=20)
        print(
            f"  scrolling the list top to end, 120 frames:  p50 {statistics.median(frames):.1f} ms, "
            f"p95 {q[18]:.1f} ms, max {max(frames):.1f} ms"
        )

        scrubber = page.get_by_role("slider", name="time travel: the event shown")
        scrubber.focus()
        at = page.locator(".scrub-at")
        presses = []
        for _ in range(20):
            before = at.get_attribute("data-seq")
            t0 = time.monotonic()
            page.keyboard.press("ArrowLeft")
            expect(at).not_to_have_attribute("data-seq", before or "")
            presses.append(time.monotonic() - t0)
        print(
            f"  a key on the scrubber to the state shown:   p50 {ms(statistics.median(presses))}, "
            f"max {ms(max(presses))} (20 presses)"
        )
        t0 = time.monotonic()
        page.keyboard.press("Home")
        expect(at).to_have_attribute("data-seq", "1")
        say("Home: the state at the first event", ms(time.monotonic() - t0))

        kind = page.get_by_role("combobox", name="events of kind")
        t0 = time.monotonic()
        kind.select_option("work.state_changed")
        expect(shown).not_to_have_text(f"{n} of {n}")
        say(f"filter by kind ({shown.inner_text()})", ms(time.monotonic() - t0))
        t0 = time.monotonic()
        kind.select_option("")
        expect(shown).to_have_text(f"{n} of {n}")
        say("every kind again", ms(time.monotonic() - t0))
        browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    a = p.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(f"no chromium at {CHROMIUM} (apt-get install chromium, or set LK_CHROMIUM)")
    replay = _replay()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        took = build(data, a.events)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; a run of {a.events:,} events")
        say("written through the store", ms(took))
        env = {**os.environ, "LK_DATA_DIR": str(data)}
        subprocess.run(lk("db", "adopt-stream"), env=env, check=True, capture_output=True, timeout=120)
        port = free_port()
        server = subprocess.Popen(
            lk("serve", "--port", str(port)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(port, timeout=60)
            token = (data / "server.token").read_text().strip()
            measure(f"http://127.0.0.1:{port}", token, replay.RUN, a.events)
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)


if __name__ == "__main__":
    main()
