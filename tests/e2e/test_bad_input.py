"""Bad input is an error, never a stuck run (issue 7, point 6): state and arguments bigger than NATS
carries, and events nobody can read, published into a live run by a foreign client."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _guard import (
    NatsServer,
    kill_all,
    processes_with_env,
    publish_raw,
    runs_of,
    wait_until,
    work_var,
)

LIMIT = "8.4 MB"
"""What NATS carries in one message here (the embedded server's max_payload, 8 MB), less the room
kept for the envelope."""

BIG_FLOW = """
from lightning_kernel import LightningApp, LightningFlow

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.small = 1
        self.big = ""
    def run(self):
        self.small = 2
        self.big = "x" * 50_000_000

app = LightningApp(Root())
"""

BIG_WORK = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class W(LightningWork):
    def __init__(self):
        super().__init__(raise_exception=os.environ["RAISE"] == "1")
        self.data = ""
    def run(self):
        self.data = "x" * 50_000_000

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = W()
    def run(self):
        self.w.run()
        if self.w.has_failed:
            self.stop(f"went on after: {self.w.status.message}")

app = LightningApp(Root())
"""

TICKER = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Ticker(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.n = 0
    def run(self):
        while os.path.exists(os.environ["HOLD"]):
            time.sleep(0.1)
            self.n += 1

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Ticker()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop(f"ticked {self.w.n} times")

app = LightningApp(Root())
"""

BIG_ARGUMENT = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class W(LightningWork):
    def run(self, text):
        print(len(text))

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = W()
    def run(self):
        self.w.run("x" * 50_000_000)

app = LightningApp(Root())
"""


def timed(lk, *args: str, timeout: float = 90):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    proc = lk(*args, timeout=timeout)
    return proc, time.monotonic() - started


def assert_ended_and_resume_says_so(lk, status: str) -> None:  # type: ignore[no-untyped-def]
    [run] = runs_of(lk)
    assert run["status"] == status, run
    again = lk("resume", "latest", timeout=60)
    assert again.returncode == 1
    assert f"run {run['id']} already ended ({status}); there is nothing to resume" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_flow_attribute_over_the_limit_fails_the_run_naming_it(lk):
    proc, took = timed(lk, "run", "app", lk.app(BIG_FLOW))
    print(f"exit {proc.returncode} in {took:.1f} s: {proc.stderr.strip()}")
    assert proc.returncode == 1
    assert f"root.big is 50.0 MB as JSON, over the {LIMIT} that NATS carries in one message" in proc.stderr
    assert "Traceback" not in proc.stderr and "MaxPayloadError" not in proc.stderr
    assert_ended_and_resume_says_so(lk, "failed")
    [run] = runs_of(lk)
    assert "root.big is 50.0 MB" in run["message"]
    # Nothing of the iteration that made it half-recorded: not even the small change beside it.
    changes = [e for e in lk.json_lines("history", "latest") if e["type"] == "flow.state_changed"]
    assert changes == []


@pytest.mark.parametrize("raise_exception", [True, False])
def test_a_work_attribute_over_the_limit_fails_the_call_at_once(lk, raise_exception):
    lk.env["RAISE"] = "1" if raise_exception else "0"
    proc, took = timed(lk, "run", "app", lk.app(BIG_WORK))
    print(f"exit {proc.returncode} in {took:.1f} s: {proc.stderr.strip()[-400:]}")
    named = f"root.w.data is 50.0 MB as JSON, over the {LIMIT} that NATS carries in one message"
    assert took < 30, "no 60 s hang"
    if raise_exception:
        assert proc.returncode == 1
        assert "root.w failed" in proc.stderr and named in proc.stderr
        assert_ended_and_resume_says_so(lk, "failed")
    else:
        assert proc.returncode == 0, proc.stderr
        assert f"went on after: {named}" in proc.stdout or named in runs_of(lk)[0]["message"]
        assert_ended_and_resume_says_so(lk, "succeeded")
    failed = [
        e
        for e in lk.json_lines("history", "latest")
        if e["type"] == "work.status_changed" and e["body"]["stage"] == "failed"
    ]
    assert len(failed) == 1 and named in failed[0]["body"]["message"]
    assert failed[0]["body"]["reason"] == "PayloadTooLarge"


def test_an_argument_over_the_limit_is_a_clear_error(lk):
    proc, took = timed(lk, "run", "app", lk.app(BIG_ARGUMENT))
    print(f"exit {proc.returncode} in {took:.1f} s: {proc.stderr.strip()[-400:]}")
    assert proc.returncode == 1
    assert f"root.w.run().args is 50.0 MB as JSON, over the {LIMIT}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_ended_and_resume_says_so(lk, "failed")
    types = [e["type"] for e in lk.json_lines("history", "latest")]
    assert "work.run_requested" not in types, "the call was refused before it was sent"


# -- unreadable events --------------------------------------------------------------------------------


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    (tmp_path / "nats-store").mkdir()
    server = NatsServer(tmp_path / "nats-store").start()
    try:
        yield server
    finally:
        server.stop()


def newer_event(run_id: str, kind: str, body: dict[str, object]) -> bytes:
    """A well-formed event of a version newer than this kernel knows, as a newer worker would send."""
    envelope = {"id": os.urandom(12).hex(), "run": run_id, "type": kind, "v": 99, "ts": time.time()}
    return json.dumps({**envelope, "src": "root.w", "body": body}).encode()


@pytest.mark.parametrize("where", ["evt", "cmd"])
def test_unreadable_events_are_recorded_by_seq_and_stall_nothing(lk, nats, where):
    lk.env.update(nats.env())
    hold = lk.dir / "hold"
    hold.touch()
    lk.env["HOLD"] = str(hold)
    data = lk.dir / "data"
    proc = lk.popen("run", "app", lk.app(TICKER))
    try:
        wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, proc=proc)
        run_id = runs_of(lk)[0]["id"]
        subject = f"lk.{run_id}.{where}.root:w"
        bad = {
            "garbage": publish_raw(nats.url, nats.token, subject, b"\x00\xffnot an event{"),
            "newer state": publish_raw(
                nats.url,
                nats.token,
                subject,
                newer_event(run_id, "work.state_changed", {"work": "root.w", "changes": {"n": 12345}}),
            ),
            "newer status": publish_raw(
                nats.url,
                nats.token,
                subject,
                newer_event(run_id, "work.status_changed", {"work": "root.w", "phase": "done"}),
            ),
            "newer request": publish_raw(
                nats.url,
                nats.token,
                f"lk.{run_id}.cmd.root:w",
                newer_event(run_id, "work.run_requested", {"work": "root.w", "what": "?"}),
            ),
        }
        after = max(bad.values())
        # The run goes on, and the recorder records what comes after them.
        n_then = work_var(lk, "root.w", "n") or 0
        wait_until(
            "events after the unreadable ones recorded",
            lambda: (
                any(e["seq"] > after for e in lk.json_lines("history", run_id))
                and (work_var(lk, "root.w", "n") or 0) > n_then
            ),
            proc=proc,
        )
        history = {e["seq"]: e for e in lk.json_lines("history", run_id)}
        assert set(bad.values()) <= set(history), "each is recorded, by its seq"
        garbage = history[bad["garbage"]]
        assert garbage["type"] == "event.unreadable" and garbage["body"]["subject"] == subject
        assert "not a lightning-kernel event" in garbage["body"]["error"]
        assert history[bad["newer state"]]["version"] == 99, "kept as sent, for a kernel that can read it"
        table = lk("history", run_id, check=True).stdout
        assert f"{bad['garbage']:>8}" in table and "unreadable" in table
        state = json.loads(lk("state", run_id, "--json", check=True).stdout)
        assert sorted(state["run"]["unreadable"]) == sorted(bad.values()), "the fold ignores them all"
        assert state["root"]["works"]["w"]["vars"]["n"] < 12345
        assert state["run"]["status"] == "running"

        # A restart of the kernel folds them again, and does not stall on them.
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        assert code == 143, proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(processes_with_env("LK_DATA_DIR", str(data)))
    hold.unlink()
    done = lk("resume", "latest", timeout=90)
    assert done.returncode == 0, done.stderr
    assert "ticked " in done.stdout
    state = json.loads(lk("state", run_id, "--json", check=True).stdout)
    assert sorted(state["run"]["unreadable"]) == sorted(bad.values())
    assert state["run"]["status"] == "succeeded"
    # A worker given an unreadable command skips it, naming its seq; nothing dies with a traceback.
    assert "Traceback" not in done.stderr, done.stderr
