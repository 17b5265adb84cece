"""``diff`` and ``fork``: the state difference between two points of runs, and a failed run carried on
from before its failure with the flow's code fixed, its finished Work kept."""

from __future__ import annotations

import copy
import hashlib
import json
import signal

from lightning_kernel._diff import diff_states

FLOW = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

RUNS = {runs!r}

class Make(LightningWork):
    def __init__(self):
        super().__init__()
        self.model = "lit://out/model.txt"
    def run(self):
        with open(RUNS, "a") as f:
            f.write("make\\n")
        os.makedirs("out", exist_ok=True)
        with open(self.model, "w") as f:
            f.write("weights v1")

class Use(LightningWork):
    def __init__(self):
        super().__init__()
        self.seen = ""
    def run(self, model):
        with open(model) as f:
            self.seen = f.read()

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.make = Make()
        self.use = Use()
    def run(self):
        self.make.run()
        if self.make.has_succeeded:
{step}

app = LightningApp(Root())
"""

BUG = """\
            raise ValueError("the bug: forgot to use the model")
"""

FIX = """\
            self.use.run(self.make.model)
            if self.use.has_succeeded:
                self.stop(f"use saw {self.use.seen}")
"""


def failed_run(lk) -> tuple[str, list[dict]]:
    """A run whose Work ``make`` succeeds, then whose flow fails: ``(run id, history)``."""
    runs = str(lk.dir / "make-runs.txt")
    lk.app(FLOW.format(runs=runs, step=BUG), "buggy.py")
    lk.app(FLOW.format(runs=runs, step=FIX), "fixed.py")
    proc = lk("run", "app", "buggy.py")
    assert proc.returncode == 1 and "the bug" in proc.stderr, proc.stderr
    run = lk.json_lines("runs")[0]["id"]
    return run, lk.json_lines("history", run)


def make_runs(lk) -> int:
    return (lk.dir / "make-runs.txt").read_text().count("make")


def fork(lk, *args: str) -> tuple[str, str]:
    """Run ``fork ARGS`` to its end: ``(new run id, its stdout)``."""
    proc = lk("fork", *args, check=True)
    first, _, rest = proc.stdout.partition("\n")
    return first.strip(), rest


def test_a_failed_run_forked_with_the_fix_keeps_its_finished_work_and_succeeds(lk):
    origin, history = failed_run(lk)
    assert make_runs(lk) == 1
    end = history[-1]
    assert end["type"] == "run.ended" and end["body"]["status"] == "failed"
    # The last event before the kernel stopped the workers: make had succeeded, both workers live.
    first_exit = next(i for i, e in enumerate(history) if e["type"] == "work.worker_exited")
    at = history[first_exit - 1]["seq"]
    alive = {e["body"]["work"] for e in history[:first_exit] if e["type"] == "work.worker_started"}
    assert alive == {"root.make", "root.use"}

    new, out = fork(lk, origin, "--at", str(at), "--app", "fixed.py")
    assert new != origin
    assert "use saw weights v1" in out, out
    assert make_runs(lk) == 1, "a Work that had succeeded by the fork's seq must not run again"
    runs = {r["id"]: r for r in lk.json_lines("runs")}
    assert runs[new]["status"] == "succeeded" and runs[origin]["status"] == "failed"

    # The fork's history starts as the origin's up to `at`, then says where it came from.
    copied = [e for e in history if e["seq"] <= at]
    forked = lk.json_lines("history", new)
    head = forked[: len(copied)]
    assert [(e["type"], e["body"].get("work"), e["body"].get("stage")) for e in head] == [
        (e["type"], e["body"].get("work"), e["body"].get("stage")) for e in copied
    ]
    assert all(e["seq"] > end["seq"] for e in forked)
    assert head[0]["body"]["app_file"].endswith("fixed.py")
    # A copied event of an iteration names the copy of the state it ran on, not the origin's seq.
    own = {e["seq"] for e in forked}
    assert all(e["input_seq"] in own for e in forked if e["input_seq"])
    mark = forked[len(copied)]
    assert mark["type"] == "run.forked" and mark["body"]["origin"] == origin and mark["body"]["at"] == at
    # The worker of make that was alive at `at` is the origin's: fenced, never re-attached.
    fenced = {
        e["body"]["work"]
        for e in forked[len(copied) + 1 :]
        if e["type"] == "work.worker_exited" and e["body"]["cause"] == "lost" and e["body"]["attempt"] == 1
    }
    assert fenced == alive
    assert not any(e["type"] == "work.worker_started" and e["body"].get("attached") for e in forked)

    # Two runs: what the fix changed; make's call and Path are the same in both.
    d = json.loads(lk("diff", origin, new, "--json", check=True).stdout)
    assert d["from"]["run"] == origin and d["to"]["run"] == new and not d["same"]
    assert d["run"]["status"] == {"from": "failed", "to": "succeeded"}
    assert d["run"]["app_file"]["to"].endswith("fixed.py")
    assert "root.make" not in d["works"] and "paths" not in d
    assert d["works"]["root.use"]["status"]["to"]["stage"] == "succeeded"
    [added] = d["works"]["root.use"]["calls"]["added"].values()
    assert added["stage"] == "succeeded" and added["args"][0]["path"] == "lit://out/model.txt"
    assert d["components"]["changed"]["root.use"]["changed"]["seen"] == {"from": "", "to": "weights v1"}
    text = lk("diff", origin, new, check=True).stdout
    assert 'run status: "failed" -> "succeeded"' in text and '~ seen: "" -> "weights v1"' in text
    assert "no difference" in lk("diff", new, new, check=True).stdout


def test_diff_of_one_run_from_and_to_shows_paths_with_size_and_hash(lk):
    origin, history = failed_run(lk)
    d = json.loads(lk("diff", origin, "--json", check=True).stdout)
    assert d["from"] == {"run": origin, "seq": 0} and d["to"] == {"run": origin, "seq": history[-1]["seq"]}
    assert set(d["components"]["added"]) == {"root", "root.make", "root.use"}
    assert d["components"]["added"]["root.make"]["kind"] == "work"
    assert d["works"]["root.make"]["status"] == {
        "from": None,
        "to": {"stage": "succeeded", "reason": "", "message": ""},
    }
    model = d["paths"]["root.make"]["added"]["lit://out/model.txt"]
    assert model["kind"] == "file" and model["bytes"] == len(b"weights v1")
    assert model["sha256"] == hashlib.sha256(b"weights v1").hexdigest()
    text = lk("diff", origin, check=True).stdout
    assert f"+ lit://out/model.txt  file, 10 B, sha256 {model['sha256'][:12]}" in text
    assert "+ root.make (work)" in text

    # From the state the failing iteration ran on to the end: only the failure, and the worker's exit.
    at = history[-1]["input_seq"]
    d = json.loads(lk("diff", origin, "--from", str(at), "--json", check=True).stdout)
    assert d["from"]["seq"] == at and d["run"]["status"] == {"from": "running", "to": "failed"}
    assert "components" not in d and "paths" not in d
    requested = next(e["seq"] for e in history if e["type"] == "work.run_requested")
    d = json.loads(lk("diff", origin, "--from", str(requested), "--to", str(at), "--json", check=True).stdout)
    assert d["works"]["root.make"]["status"]["from"]["stage"] == "pending"
    assert d["works"]["root.make"]["status"]["to"]["stage"] == "succeeded"
    assert "lit://out/model.txt" in d["paths"]["root.make"]["added"]
    bad = lk("diff", origin, "--to", str(history[-1]["seq"] + 1000))
    assert bad.returncode == 1 and "--to" in bad.stderr and "last event" in bad.stderr


def test_a_fork_before_a_call_finished_runs_it_again(lk):
    origin, history = failed_run(lk)
    requested = next(e["seq"] for e in history if e["type"] == "work.run_requested")
    new, out = fork(lk, origin, "--at", str(requested), "--app", "fixed.py")
    assert "use saw weights v1" in out
    assert make_runs(lk) == 2, "a call still pending at the fork's seq runs in the fork"
    newest = lk.json_lines("runs")[0]
    assert newest["id"] == new and newest["status"] == "succeeded"


IDLE = """
from lightning_kernel import LightningApp, LightningFlow

class Idle(LightningFlow):
    def __init__(self):
        super().__init__()
        self.ready = False
        self._said = False
    def run(self):
        self.ready = True
        if not self._said:  # once a process: the first iteration of a run, a resume or a fork
            self._said = True
            print("ready", flush=True)

app = LightningApp(Idle())
"""


def test_a_fork_at_a_seq_that_is_no_event_of_the_run_is_a_clear_error(lk):
    # A run interrupted, another run, then the first one stopped: its seqs hold the other's between.
    proc = lk.popen("run", "app", lk.app(IDLE, "idle.py"))
    assert proc.stdout is not None
    while proc.stdout.readline().strip() != "ready":
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    idle = lk.json_lines("runs")[0]["id"]
    other, other_history = failed_run(lk)
    lk("stop", idle, check=True)
    idle_history = lk.json_lines("history", idle)
    inside = other_history[0]["seq"]
    assert idle_history[0]["seq"] < inside < idle_history[-1]["seq"]

    def error(at: int) -> str:
        proc = lk("fork", idle, "--at", str(at))
        assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
        return proc.stderr

    assert f"its first event is seq {idle_history[0]['seq']}" in error(0)
    assert f"past run {idle}'s last event (seq {idle_history[-1]['seq']})" in error(
        idle_history[-1]["seq"] + 5
    )
    msg = error(inside)
    assert f"seq {inside} is not an event of run {idle}" in msg
    before = max(e["seq"] for e in idle_history if e["seq"] < inside)
    assert f"nearest events are seq {before} and seq {idle_history[-1]['seq']}" in msg
    assert "had ended (stopped)" in error(idle_history[-1]["seq"])
    failed_end = other_history[-1]
    msg = lk("fork", other, "--at", str(failed_end["seq"])).stderr
    assert "had ended (failed)" in msg and f"e.g. seq {failed_end['input_seq']}" in msg
    assert [r["id"] for r in lk.json_lines("runs")] == [other, idle], "a refused fork makes no run"


def test_diff_states_ignores_seqs_and_names_what_changed():
    call = {"index": 1, "seq": 5, "stage": "succeeded", "timestamp": 1.0, "reason": "", "message": ""}
    work = {"status": {"stage": "succeeded", "timestamp": 1.0}, "calls": {"c1": call}}
    a = {
        "run": {"id": "a", "seq": 9, "status": "failed", "name": "app"},
        "components": {"root": {"kind": "flow", "vars": {"n": 1, "gone": True}}},
        "works": {"root.w": work},
    }
    b = copy.deepcopy(a)
    b["run"].update(id="b", seq=40)
    b["works"]["root.w"]["calls"]["c1"].update(seq=25, timestamp=7.0)  # a fork's copy of the call
    before = copy.deepcopy(a)
    paths = {"paths": {"root.w": {"lit://m": {"kind": "file", "bytes": 3, "sha256": "ab"}}}}
    same = diff_states(a, b, paths, paths)
    assert same["same"] and same["from"] == {"run": "a", "seq": 9} and same["to"] == {"run": "b", "seq": 40}
    assert a == before, "diff_states must not change its inputs"

    b["components"]["root"]["vars"] = {"n": 2, "new": "x"}
    newer = {"paths": {"root.w": {"lit://m": {"kind": "file", "bytes": 4, "sha256": "cd"}}}}
    args = {"args": {"root.w": {"c1": {"args": [1], "kwargs": {}}}}}
    d = diff_states(a, b, {**paths, **args}, {**newer, **args})
    assert d["components"]["changed"]["root"] == {
        "added": {"new": "x"},
        "removed": {"gone": True},
        "changed": {"n": {"from": 1, "to": 2}},
    }
    assert d["paths"]["root.w"]["changed"]["lit://m"]["to"]["sha256"] == "cd"
    assert "works" not in d and "run" not in d
    assert diff_states({}, a)["works"]["root.w"]["calls"]["added"]["c1"]["stage"] == "succeeded"


def test_a_fork_runs_in_the_foreground_and_ctrl_c_leaves_it_resumable(lk):
    proc = lk.popen("run", "app", lk.app(IDLE, "idle.py"))
    assert proc.stdout is not None
    while proc.stdout.readline().strip() != "ready":
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    origin = lk.json_lines("runs")[0]["id"]
    at = lk.json_lines("history", origin)[-1]
    assert at["type"] == "run.interrupted"  # an interrupted run is no ended one: it forks

    fork = lk.popen("fork", origin, "--at", str(at["seq"]))
    assert fork.stdout is not None
    new = fork.stdout.readline().strip()  # the new run's id comes first
    assert fork.stdout.readline().strip() == "ready"  # then the flow runs, live
    fork.send_signal(signal.SIGINT)
    _, err = fork.communicate(timeout=30)
    assert fork.returncode == 130, err
    assert f"lightning-kernel resume {new}" in err
    runs = {r["id"]: r["status"] for r in lk.json_lines("runs")}
    assert runs == {origin: "interrupted", new: "interrupted"}
    # The fork starts from the origin's state (what the signal let the origin record: a SIGTERM
    # inside root.run() drops that iteration, so ``ready`` may or may not be recorded).
    forked = next(e for e in lk.json_lines("history", new) if e["type"] == "run.forked")
    assert lk.state(new, at=forked["seq"])["root"] == lk.state(origin)["root"]
