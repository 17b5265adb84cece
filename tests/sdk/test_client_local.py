"""``lightning_kernel.Client()`` on a local data dir: real kernels (detached processes it starts), real
NATS and SQLite. Tests wait on the runs' events, never on the clock."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from _sdk_helpers import GATED, end_kernel, until_running
from lightning_kernel import Client
from lightning_kernel._records import EventRecord, LogLine, RunInfo
from lightning_kernel._sdk import RunState
from lightning_kernel.errors import ComponentNotFound, ConfigError, KernelError, ParameterError, RunNotFound

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_submit_follow_and_read_a_run(lk, data_dir):
    client = Client(data_dir=data_dir)
    run = client.submit(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    assert isinstance(run, RunInfo) and run.name == "counter"

    events = list(client.events(run.id))  # follows the live run: returns once it has ended
    assert all(isinstance(e, EventRecord) and e.run_id == run.id for e in events)
    assert events[0].type == "run.created" and events[-1].type == "run.ended"
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    ended = client.run(run.id)
    assert ended.status == "succeeded" and ended.last_seq == events[-1].seq
    assert client.run("latest") == ended and client.runs() == [ended]

    assert [e.seq for e in client.history(run.id)] == [e.seq for e in events]
    assert client.history(run.id, after=events[3].seq) == events[4:]
    assert client.history(run.id, limit=2) == events[:2]
    assert list(client.events(run.id, after=events[-2].seq, follow=False)) == events[-1:]

    state = client.state(run.id)
    assert isinstance(state, RunState) and state.status == "succeeded" and state.seq == events[-1].seq
    assert state.root["works"]["w_1"]["vars"]["counter"] >= 5
    two = next(
        e.seq
        for e in events
        if e.type == "work.state_changed"
        and e.body["work"] == "root.w_1"
        and e.body["changes"]["counter"] == 2
    )
    assert client.state(run.id, at=two).root["works"]["w_1"]["vars"]["counter"] == 2

    lines = list(client.logs(run.id, "root"))
    assert all(isinstance(x, LogLine) and x.component == "root" for x in lines)
    assert lines[-1].line == "done" and lines[0].line.startswith("State:")
    assert [x.line for x in client.logs(run.id, "root", follow=True)] == [x.line for x in lines]
    assert list(client.logs(run.id, "root.w_1")) == []  # a Work that printed nothing


def test_errors_are_the_kernels(lk, data_dir):
    client = Client(data_dir=data_dir)
    run = client.submit(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    last = list(client.events(run.id))[-1].seq
    for call in (
        lambda: client.run("r-missing"),
        lambda: client.state("r-missing"),
        lambda: client.history("r-missing"),
        lambda: client.events("r-missing"),
        lambda: client.logs("r-missing"),
        lambda: client.stop("r-missing"),
    ):
        with pytest.raises(RunNotFound, match="no run 'r-missing'") as info:
            call()
        assert info.value.run_id == "r-missing"
    with pytest.raises(
        ComponentNotFound, match=re.escape("its components are: root, root.w_1, root.w_2")
    ) as comp:
        client.logs(run.id, "root.nope")
    assert comp.value.known == ["root", "root.w_1", "root.w_2"]
    with pytest.raises(ParameterError, match=rf"at={last + 1} is past run {run.id}'s last event") as param:
        client.state(run.id, at=last + 1)
    assert param.value.name == "at"
    with pytest.raises(ParameterError, match="after=-1"):
        client.history(run.id, after=-1)
    with pytest.raises(KernelError, match=f"run {run.id} already ended"):
        client.stop(run.id)
    with pytest.raises(KernelError, match="already ended"):
        client.resume(run.id)
    # The CLI names the options instead.
    cli = Client(data_dir=data_dir, param_names={"at": "--at"})
    with pytest.raises(ParameterError, match=rf"--at {last + 1} is past"):
        cli.state(run.id, at=last + 1)


def test_a_mistyped_data_dir_is_an_error_and_is_not_made(tmp_path):
    typo = tmp_path / "dtaa"
    client = Client(data_dir=str(typo))
    with pytest.raises(ConfigError, match="no database at"):
        client.runs()
    assert not typo.exists()


def test_stop_a_live_run(lk, data_dir):
    client = Client(data_dir=data_dir)
    run = client.submit(lk.app(GATED.format(gate=str(lk.dir / "never")), "gated.py"))
    seen = until_running(client, run.id)
    stopped = client.stop(run.id)
    assert stopped.status == "stopped"
    rest = list(client.events(run.id, after=seen))
    assert rest[-1].type == "run.ended" and rest[-1].body["status"] == "stopped"
    assert [x.line for x in client.logs(run.id, "root.w")] == ["waiting for the gate"]


def test_an_interrupted_run_resumes(lk, data_dir):
    client = Client(data_dir=data_dir)
    gate = lk.dir / "gate"
    run = client.submit(lk.app(GATED.format(gate=str(gate)), "gated.py"))
    until_running(client, run.id)
    end_kernel(Path(data_dir))  # SIGTERM to the detached kernel: the run is interrupted, resumable
    interrupted = client.run(run.id)
    assert interrupted.status == "interrupted"

    resumed = client.resume(run.id)
    assert resumed.id == run.id and resumed.status == "running"
    after = until_running(client, run.id, after=interrupted.last_seq)  # the interrupted Work runs again
    gate.touch()
    rest = list(client.events(run.id, after=after))
    assert rest[-1].type == "run.ended" and client.run(run.id).status == "succeeded"
    assert [x.line for x in client.logs(run.id, "root")] == ["through the gate", "gate opened"]
    types = [e.type for e in client.history(run.id)]
    assert types.index("run.interrupted") < types.index("run.resumed")
    detached = Path(data_dir) / "detached"
    assert sorted(p.name for p in detached.iterdir()) == [f"{run.id}.1.log", f"{run.id}.log"]


def test_submit_an_app_object(lk, data_dir):
    from lightning_kernel._app import load_app

    app, _ = load_app(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    client = Client(data_dir=data_dir)
    run = client.submit(app, name="object")
    assert run.name == "object" and run.app_file.endswith("counter.py")  # the file of its root flow
    assert list(client.events(run.id))[-1].type == "run.ended"
    assert client.state(run.id).root["works"]["w_1"]["vars"]["counter"] >= 5
    assert os.path.exists(os.path.join(data_dir, "detached", f"{run.id}.log"))


def test_a_kernel_that_cannot_start_says_why(lk, data_dir):
    client = Client(data_dir=data_dir)
    with pytest.raises(KernelError, match="defines no LightningApp"):
        client.submit(lk.app("x = 1\n", "nothing.py"))
    with pytest.raises(KernelError, match="does not exist"):
        client.submit(str(lk.dir / "nope.py"))


ARGS_APP = """
import os, sys
from lightning_kernel import LightningApp, LightningFlow, LightningWork

ARGS = sys.argv[1:]

class W(LightningWork):
    def __init__(self):
        super().__init__()
        self.seen = ""
    def run(self):
        self.seen = f"{ARGS} {os.environ.get('WHO')}"

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = W()
        self.flow_saw = f"{ARGS} {os.environ.get('WHO')}"
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop()

app = LightningApp(Root())
"""


def test_submit_an_app_file_with_its_arguments_and_environment(lk, data_dir):
    client = Client(data_dir=data_dir)
    run = client.submit(lk.app(ARGS_APP, "args.py"), argv=["--lr", "0.1"], env={"WHO": "ann"})
    list(client.events(run.id))  # to its end
    root = client.state(run.id).root
    assert root["vars"]["flow_saw"] == "['--lr', '0.1'] ann"
    assert root["works"]["w"]["vars"]["seen"] == "['--lr', '0.1'] ann"
    with pytest.raises(KernelError, match="submit the file's path"):
        client.submit(Client, argv=["x"])  # type: ignore[arg-type]
