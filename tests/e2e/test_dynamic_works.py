"""Works the flow creates while it runs: recorded, hosted, replayed, and resumed after kill -9."""

from __future__ import annotations

import json
import signal

APP = """
import time
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.structures import Dict, List

class Steps(LightningWork):
    def __init__(self, until):
        super().__init__(parallel=True)
        self.until = until
        self.step = 0
        self.launches = 0
    def run(self):
        self.launches += 1
        while self.step < self.until:
            time.sleep(0.05)
            self.step += 1
            print(f"{self.name} step {self.step}", flush=True)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.jobs = Dict()
        self.extras = List()
        self.summary = ""
    def run(self):
        for name, until in (("short", 3), ("long", 40)):
            if name not in self.jobs:
                self.jobs[name] = Steps(until)
            self.jobs[name].run()
        if self.jobs["short"].has_succeeded and not self.extras:
            self.extras.append(Steps(2))  # added once another finished
        for w in self.extras:
            w.run()
        if not hasattr(self, "late"):
            self.late = Steps(1)  # a new attribute holding a Work
        self.late.run()
        works = [*self.jobs.values(), *self.extras, self.late]
        if self.extras and all(w.has_succeeded for w in works):
            self.summary = " ".join(f"{w.name}={w.step}/{w.launches}" for w in works)
            self.stop(self.summary)

app = LightningApp(Root())
"""


def added(lk) -> list[str]:
    return [e["body"]["name"] for e in lk.json_lines("history", "latest") if e["type"] == "component.added"]


def test_dynamic_works_run_and_replay(lk):
    proc = lk("run", "app", lk.app(APP), check=True)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "root.jobs.short=3/1 root.jobs.long=40/1 root.extras.0=2/1 root.late=1/1", last
    assert sorted(added(lk)) == ["root.extras.0", "root.jobs.long", "root.jobs.short", "root.late"]
    state = lk.state()["root"]
    assert state["flows"]["jobs"]["works"]["long"]["vars"]["step"] == 40
    assert state["flows"]["extras"]["works"]["0"]["vars"]["step"] == 2
    assert state["works"]["late"]["status"]["stage"] == "succeeded"
    replay = lk("replay", "latest", "--json", check=True)
    assert json.loads(replay.stdout)["differences"] == [], replay.stdout


def test_a_dynamic_dict_of_works_survives_kill_9_and_resume(lk):
    proc = lk.popen("run", "app", lk.app(APP))
    assert proc.stdout is not None
    for line in proc.stdout:  # the long job is under way, the short one done
        if line.startswith("root.jobs.long step 10"):
            break
    else:
        raise AssertionError(f"the run ended early: {proc.communicate()}")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    before = lk.state()["root"]["flows"]["jobs"]["works"]["long"]["vars"]["step"]
    assert 0 < before < 40

    resumed = lk("resume", "latest", check=True, timeout=90)
    last = resumed.stdout.strip().splitlines()[-1]
    # The short job is not run again; the long one carries on from its last step in a second launch.
    assert "root.jobs.short=3/1" in last and "root.jobs.long=40/2" in last, last
    assert "root.extras.0=2/1" in last and "root.late=1/1" in last, last
    names = added(lk)
    assert sorted(names) == ["root.extras.0", "root.jobs.long", "root.jobs.short", "root.late"], names
    steps = [
        e["body"]["changes"]["step"]
        for e in lk.json_lines("history", "latest")
        if e["type"] == "work.state_changed"
        and e["body"]["work"] == "root.jobs.long"
        and "step" in e["body"]["changes"]
    ]
    assert steps == sorted(steps) and steps[-1] == 40
    assert lk.json_lines("runs")[0]["status"] == "succeeded"
