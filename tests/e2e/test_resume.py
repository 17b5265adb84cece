"""A run that did not end resumes: Works that succeeded are not run again, interrupted ones are."""

from __future__ import annotations

import signal
import time

import pytest

APP = """
import time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Quick(LightningWork):
    def __init__(self):
        super().__init__()
        self.runs = 0
    def run(self):
        self.runs += 1

class Steps(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.step = 0
        self.launches = 0
    def run(self):
        self.launches += 1
        while self.step < 60:
            time.sleep(0.1)
            self.step += 1

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.quick = Quick()
        self.steps = Steps()
    def run(self):
        self.quick.run()
        self.steps.run()
        if self.steps.has_succeeded:
            self.stop(f"quick ran {self.quick.runs}x; steps done at {self.steps.step} in {self.steps.launches} launches")

app = LightningApp(Root())
"""


def wait_for_step(lk, at_least: int, timeout: float = 90, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run exited with {proc.returncode} early:\n{out}\n{err}")
        out = lk("state", "latest", "--json")
        if out.returncode == 0 and '"step":' in out.stdout:
            import json

            step = json.loads(out.stdout)["root"]["works"]["steps"]["vars"]["step"]
            if step >= at_least:
                return
        time.sleep(0.2)
    last = lk("state", "latest", "--json")
    raise AssertionError(
        f"the run did not make progress: {last.returncode} {last.stdout[-500:]} {last.stderr}"
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_where_it_was(lk, how):
    app = lk.app(APP)
    proc = lk.popen("run", "app", app)
    wait_for_step(lk, 4, proc=proc)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    if how != signal.SIGKILL:
        assert "lightning-kernel resume" in err
        assert lk.json_lines("runs")[0]["status"] == "interrupted"
    step_before = lk.state()["root"]["works"]["steps"]["vars"]["step"]
    assert 0 < step_before < 60

    resumed = lk("resume", "latest", check=True, timeout=60)
    assert "quick ran 1x" in resumed.stdout, "a Work that succeeded must not run again"
    assert "steps done at 60 in 2 launches" in resumed.stdout
    history = lk.json_lines("history", "latest")
    steps = [
        e["body"]["changes"]["step"]
        for e in history
        if e["type"] == "work.state_changed" and "step" in e["body"]["changes"]
    ]
    # It carried on from its last recorded step rather than starting over.
    assert steps == sorted(steps) and steps[-1] == 60 and len(steps) <= 61
    assert lk.json_lines("runs")[0]["status"] == "succeeded"


def test_resume_of_an_ended_run_is_a_clear_error(lk):
    app = lk.app(
        "from lightning_kernel import *\nclass F(LightningFlow):\n    def run(self):\n        self.stop()\napp = LightningApp(F())\n"
    )
    lk("run", "app", app, check=True)
    proc = lk("resume", "latest")
    assert proc.returncode == 1 and "already ended (succeeded)" in proc.stderr


def test_stop_of_a_run_no_kernel_hosts(lk):
    app = lk.app(APP)
    proc = lk.popen("run", "app", app)
    wait_for_step(lk, 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    lk("stop", "latest", check=True)
    assert lk.json_lines("runs")[0]["status"] == "stopped"


def test_stop_of_a_live_run_from_another_shell(lk):
    app = lk.app(APP)
    proc = lk.popen("run", "app", app)
    wait_for_step(lk, 2)
    lk("stop", "latest", check=True)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    runs = lk.json_lines("runs")
    assert runs[0]["status"] == "stopped" and "lightning-kernel stop" in runs[0]["message"]
