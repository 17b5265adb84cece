"""What the SDK's tests share: a gated app, following a run until a Work runs, ending a detached kernel."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lightning_kernel import Client

GATED = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

GATE = {gate!r}

class Wait(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.opened = False
    def run(self):
        print("waiting for the gate")
        while not os.path.exists(GATE):
            time.sleep(0.02)
        self.opened = True

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Wait()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            print("through the gate")
            self.stop("gate opened")

app = LightningApp(Root())
"""


def until_running(client: Client, run: str, work: str = "root.w", after: int = 0) -> int:
    """Follow ``run`` (after ``after``) until ``work`` runs; the seq of that event."""
    for e in client.events(run, after=after):
        if e.type == "work.status_changed" and e.body["work"] == work and e.body["stage"] == "running":
            return e.seq
    raise AssertionError(f"run {run} ended before {work} ran")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (its parent has not reaped it yet) is gone
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def end_kernel(data: Path, timeout: float = 60) -> None:
    """SIGTERM the kernel that holds ``data`` (a detached one the SDK started), and wait for its end."""
    try:
        pid = int(json.loads((data / "kernel.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"the kernel {pid} did not end after SIGTERM"
        time.sleep(0.05)
