"""End to end through the CLI: apps run on the embedded defaults, and the log tells what happened."""

from __future__ import annotations

import re
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

COUNTER = (EXAMPLES / "counter.py").read_text()


def test_counter_app_runs_to_the_end_and_is_recorded(lk):
    app = lk.app(COUNTER)
    proc = lk("run", "app", app, check=True)
    states = re.findall(r"State: (\d+) (\d+)", proc.stdout)
    assert states, proc.stdout
    firsts = [int(a) for a, _ in states]
    assert firsts == sorted(firsts) and firsts[-1] == 5
    assert set(range(6)) <= set(firsts), "the flow must see every change of w_1"
    assert proc.stdout.rstrip().endswith("done")

    runs = lk.json_lines("runs")
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["name"] == "app"
    history = lk.json_lines("history", "latest")
    types = [e["type"] for e in history]
    assert types[0] == "run.created" and types[-1] == "run.ended"
    assert [e["seq"] for e in history] == sorted(e["seq"] for e in history)
    counts = [
        e["body"]["changes"]["counter"]
        for e in history
        if e["type"] == "work.state_changed" and e["body"]["work"] == "root.w_1"
    ]
    # The iteration that stops the app calls w_1.run() first, so a sixth run may start before the end.
    assert counts[:5] == [1, 2, 3, 4, 5] and counts == list(range(1, len(counts) + 1))

    final = lk.state()
    assert final["run"]["status"] == "succeeded"
    assert final["root"]["works"]["w_1"]["vars"]["counter"] >= 5
    # The state at the event where w_1 reached 3.
    seq3 = next(
        e["seq"]
        for e in history
        if e["type"] == "work.state_changed"
        and e["body"]["work"] == "root.w_1"
        and e["body"]["changes"]["counter"] == 3
    )
    assert lk.state(at=seq3)["root"]["works"]["w_1"]["vars"] == {"counter": 3}
    assert lk.state(at=seq3 - 1)["root"]["works"]["w_1"]["vars"] == {"counter": 2}

    table = lk("history", "latest", check=True).stdout
    assert "run.created" in table and "root.w_1 counter=5" in table
    assert re.search(r"\S+\s+app\s+succeeded", lk("runs", check=True).stdout)
    logs = lk("logs", "latest", "root", check=True).stdout.splitlines()
    assert logs[-1] == "done" and logs[0].startswith("State:")


def test_blocking_and_cached_calls_in_a_nested_pipeline(lk):
    proc = lk("run", "app", lk.app((EXAMPLES / "pipeline.py").read_text()), check=True)
    lines = proc.stdout.splitlines()
    assert lines == ["root.stage.first: 3^2 = 9", "root.stage.second: 9^2 = 81", "3^4 = 81"]
    history = lk.json_lines("history", "latest")
    requests = [e["body"]["work"] for e in history if e["type"] == "work.run_requested"]
    assert requests == ["root.stage.first", "root.stage.second"], "cached calls must not run twice"


def test_code_after_a_blocking_call_runs_only_once_it_succeeded(lk):
    app = lk.app("""
        import time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Slow(LightningWork):
            def __init__(self):
                super().__init__()
                self.done = False
            def run(self):
                time.sleep(0.3)
                self.done = True

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Slow()
                self.after = 0
            def run(self):
                print("before")
                self.w.run()
                assert self.w.done, "code after a blocking call ran too early"
                self.after += 1
                if self.after == 2:
                    self.stop()

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app, check=True)
    assert proc.stdout.count("before") >= 2


def test_cache_calls_false_and_parallel_false_blocks_forever(lk):
    app = lk.app("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class W(LightningWork):
            def __init__(self):
                super().__init__(cache_calls=False, parallel=False)
                self.n = 0
            def run(self):
                self.n += 1

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
            def run(self):
                if self.w.n >= 3:
                    self.stop("three runs")
                print("HERE BEFORE")
                self.w.run()
                print("HERE AFTER")

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app, check=True)
    assert "HERE AFTER" not in proc.stdout
    assert "three runs" in proc.stdout
    assert lk.state()["root"]["works"]["w"]["vars"]["n"] == 3


def test_failure_with_raise_exception_fails_the_app_and_shows_the_traceback(lk):
    app = lk.app("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Boom(LightningWork):
            def run(self):
                raise ValueError("the model diverged")

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Boom()
            def run(self):
                self.w.run()

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app)
    assert proc.returncode == 1
    assert "ValueError: the model diverged" in proc.stderr
    assert 'raise ValueError("the model diverged")' in proc.stderr  # the traceback, not just the message
    assert lk.json_lines("runs")[0]["status"] == "failed"


def test_failure_without_raise_exception_lets_the_flow_go_on(lk):
    app = lk.app("""
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Boom(LightningWork):
            def run(self):
                raise RuntimeError("nope")

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Boom(raise_exception=False, parallel=True)
            def run(self):
                self.w.run()
                if self.w.has_failed:
                    self.stop(f"went on after {self.w.status.reason}")

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app, check=True)
    assert "went on after RuntimeError" in proc.stdout


def test_work_stop_records_stopped(lk):
    app = lk.app("""
        import time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Forever(LightningWork):
            def __init__(self):
                super().__init__(parallel=True)
                self.ticks = 0
            def run(self):
                while True:
                    time.sleep(0.02)
                    self.ticks += 1

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Forever()
                self.asked = False
            def run(self):
                self.w.run()
                if self.w.ticks >= 3 and not self.asked:
                    self.asked = True
                    self.w.stop()
                if self.w.has_stopped:
                    self.stop(f"stopped: {self.w.status.reason}")

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app, check=True, timeout=60)
    assert "stopped: stopped by the flow" in proc.stdout


def test_a_work_killed_with_sigkill_fails_the_flow(lk):
    app = lk.app("""
        import os, time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Victim(LightningWork):
            def __init__(self):
                super().__init__(parallel=True, raise_exception=False)
                self.pid = 0
            def run(self):
                self.pid = os.getpid()
                time.sleep(60)

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = Victim()
                self.killed = False
            def run(self):
                self.w.run()
                if self.w.pid and not self.killed:
                    self.killed = True
                    os.kill(self.w.pid, 9)
                if self.w.has_failed:
                    self.stop(f"saw: {self.w.status.message}")

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app, check=True, timeout=60)
    assert "saw: the worker process was killed by SIGKILL" in proc.stdout


def test_non_json_state_in_a_running_flow_fails_naming_the_attribute(lk):
    app = lk.app("""
        from lightning_kernel import LightningApp, LightningFlow

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.items = []
            def run(self):
                self.items.append(object())

        app = LightningApp(Root())
    """)
    proc = lk("run", "app", app)
    assert proc.returncode == 1
    assert "root.items" in proc.stderr and "not JSON-serialisable" in proc.stderr


def test_a_work_as_root(lk):
    app = lk.app("""
        from lightning_kernel import LightningApp, LightningWork

        class Only(LightningWork):
            def __init__(self):
                super().__init__()
                self.value = 0
            def run(self):
                self.value = 42
                print("work ran")

        app = LightningApp(Only())
    """)
    proc = lk("run", "app", app, check=True)
    assert "work ran" in proc.stdout
    assert lk.state()["root"]["vars"] == {"value": 42}


TOGETHER = """
import time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Sender(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.changed = False
        self.msg = ""
        self.i = 0
    def run(self):
        for k in range(1, 51):
            self.changed = True  # set together: the flow never sees one without the others
            self.msg = f"message {k}"
            self.i = k
            time.sleep(0.02)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Sender()
        self._seen = []
        self._torn = 0
        self._runs = 0
    def run(self):
        self._runs += 1
        self.w.run()
        if self.w.changed and self.w.msg != f"message {self.w.i}":
            self._torn += 1
        if not self._seen or self._seen[-1] != self.w.i:
            self._seen.append(self.w.i)
        if self.w.has_succeeded:
            self.stop(f"seen {self._seen == list(range(self._seen[0], 51))} {self._seen[0]} torn {self._torn}")

app = LightningApp(Root())
"""


def test_changes_made_together_arrive_together_and_paced_changes_each_arrive(lk):
    proc = lk("run", "app", lk.app(TOGETHER), check=True)
    last = proc.stdout.strip().splitlines()[-1]
    _, ok, first, _, torn = last.split()
    assert ok == "True" and int(first) <= 1 and torn == "0", last
    deltas = [
        e["body"]["changes"]
        for e in lk.json_lines("history", "latest")
        if e["type"] == "work.state_changed" and e["body"]["work"] == "root.w"
    ]
    # One delta per burst: each holds the message with its number.
    assert all(("msg" in d) == ("i" in d) for d in deltas), deltas
    assert [d["i"] for d in deltas if "i" in d] == list(range(1, 51))
