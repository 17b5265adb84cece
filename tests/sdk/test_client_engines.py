"""``replay``, ``diff`` and ``fork`` through the SDK, locally and on a ``serve``: the engines of
``_replay``, ``_diff`` and ``_fork`` behind one API."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning_kernel import Client
from lightning_kernel._replay import ReplayResult
from lightning_kernel._sdk import StateDiff
from lightning_kernel.errors import ParameterError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def check_engines(client: Client, app_file: str) -> None:
    run = client.submit(app_file)
    events = list(client.events(run.id))

    replayed = client.replay(run.id)
    assert isinstance(replayed, ReplayResult) and replayed.ok and replayed.error() is None
    assert replayed.iterations > 0 and replayed.run_id == run.id
    assert f"replayed {replayed.iterations} iterations of {run.id}: no difference" == replayed.summary()

    whole = client.diff(run.id)
    assert isinstance(whole, StateDiff) and not whole.same
    assert whole.changes["to"]["seq"] == events[-1].seq
    last = events[-1].seq
    assert client.diff(run.id, from_seq=last, to_seq=last).same

    mid = next(
        e.seq for e in events if e.type == "work.state_changed" and e.body["changes"].get("counter") == 2
    )
    fork = client.fork(run.id, at=mid)
    assert fork.id != run.id
    forked = list(client.events(fork.id))
    assert forked[-1].type == "run.ended" and client.run(fork.id).status == "succeeded"
    assert any(e.type == "run.forked" and e.body["origin"] == run.id for e in forked)
    other = client.diff(run.id, other=fork.id)
    assert other.other == fork.id and other.changes["to"]["run"] == fork.id


def test_locally(lk, data_dir):
    check_engines(Client(data_dir=data_dir), lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))


def test_on_a_server(lk, serve, data_dir):
    client = Client(serve, data_dir=data_dir)
    check_engines(client, lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    with pytest.raises(ParameterError, match="recorded code"):
        client.replay("latest", app=str(EXAMPLES / "counter.py"))
