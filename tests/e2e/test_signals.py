"""A SIGTERM that comes as the kernel wakes for an event (a Work's first line) stops the run at once
and records it interrupted: Python 3.10/3.11's ``asyncio.wait_for`` dropped that cancel, and the run
went on until the 20 s watchdog killed the kernel, leaving the run ``running``."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import pytest
from conftest import EXE

GATED = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Wait(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
    def run(self):
        print("waiting for the gate", flush=True)
        while True:
            time.sleep(0.02)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Wait()
    def run(self):
        self.w.run()

app = LightningApp(Root())
"""


@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_at_a_works_first_line_interrupts_the_run_at_once(lk: Any, attempt: int) -> None:
    proc = subprocess.Popen(
        [*EXE, "run", "app", lk.app(GATED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=lk.env,
        cwd=lk.dir,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "waiting for the gate" in line:
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            break
    else:
        raise AssertionError(proc.communicate()[1])
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 143, err
    assert "still stopping after" not in err and took < 15, f"{took:.1f} s: {err}"
    assert "interrupted; carry on with `lightning-kernel resume" in err, err
    assert lk.json_lines("runs")[0]["status"] == "interrupted"
