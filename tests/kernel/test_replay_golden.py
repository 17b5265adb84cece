"""Golden histories (``tests/golden``, recorded with ``history --json`` by ``tests/golden/record.py``)
replay with no difference: a kernel change that makes a flow emit something else on the same state
fails here. Each is also replayed against a changed flow, which must be caught."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lightning_kernel._app import load_app
from lightning_kernel._replay import Replayer
from lightning_kernel.errors import NondeterminismError, ReplayError

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NAMES = sorted(p.name.removesuffix(".history.jsonl") for p in GOLDEN.glob("*.history.jsonl"))


def _history(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (GOLDEN / f"{name}.history.jsonl").read_text().splitlines() if line]


def _changed(tmp_path: Path, name: str, old: str, new: str) -> Any:
    source = (GOLDEN / f"{name}.py").read_text()
    assert old in source
    path = tmp_path / f"{name}_changed.py"
    path.write_text(source.replace(old, new))
    return load_app(str(path))[0]


def test_there_are_golden_histories() -> None:
    assert set(NAMES) >= {"chain", "loop", "failing"}


@pytest.mark.parametrize("name", NAMES)
def test_a_golden_history_replays_with_no_difference(name: str) -> None:
    history = _history(name)
    result = Replayer(load_app(str(GOLDEN / f"{name}.py"))[0]).replay(history)
    assert result.ok, "\n".join(d.message for d in result.differences)
    recorded = {e["input_seq"] for e in history if e["input_seq"]}
    assert result.iterations == len(recorded) and result.iterations > 0
    assert result.events == len(history)


def test_other_arguments_are_named_with_the_event_and_the_work(tmp_path: Path) -> None:
    app = _changed(tmp_path, "chain", 'self.w_1.run("a")', 'self.w_1.run("b")')
    result = Replayer(app).replay(_history("chain"))
    first = result.differences[0]
    request = next(e for e in _history("chain") if e["type"] == "work.run_requested")
    assert first.seq == request["seq"] and first.component == "root.w_1"
    assert first.message == (
        f"at seq {request['seq']}, root.run() asked root.w_1 to run with args ['b']; the run recorded ['a']"
    )
    error = result.error()
    assert isinstance(error, NondeterminismError) and error.recorded == ["a"] and error.replayed == ["b"]


def test_another_state_change_is_named_with_the_attribute(tmp_path: Path) -> None:
    app = _changed(tmp_path, "chain", "self.step = 2", "self.step = 20")
    result = Replayer(app).replay(_history("chain"))
    assert len(result.differences) == 1, result.differences
    d = result.differences[0]
    assert d.component == "root" and "root.run() set root.step = 20; the run recorded 2" in d.message
    assert (d.recorded, d.replayed) == (2, 20)


def test_a_call_the_run_did_not_record_is_named(tmp_path: Path) -> None:
    app = _changed(
        tmp_path,
        "chain",
        "            self.step = 2\n",
        "            self.step = 2\n            self.w_1.run('x')\n",
    )
    result = Replayer(app).replay(_history("chain"))
    d = result.differences[0]
    # w_1 is not parallel: its new call blocks the iteration, which no longer reaches self.stop()
    assert d.message.endswith(
        "root.run() asked root.w_1 to run with args ['x']; the run recorded that it ended the run "
        "(succeeded: done aaaa)"
    ), d.message
    assert d.component == "root.w_1" and d.replayed["args"] == ["x"]


def test_a_failure_compares_by_its_exception_not_its_traceback(tmp_path: Path) -> None:
    # The same flow from another file (other paths, other line numbers) fails the same way.
    app = _changed(tmp_path, "failing", "class Give", "\n\n\nclass Give")
    assert Replayer(app).replay(_history("failing")).ok
    other = _changed(tmp_path, "failing", "ValueError(", "RuntimeError(")
    d = Replayer(other).replay(_history("failing")).differences[0]
    assert "ended the run (failed: RuntimeError: the flow does not want 7)" in d.message, d.message


def test_until_stops_at_the_iteration_that_produced_the_event() -> None:
    history = _history("loop")
    second = sorted({e["input_seq"] for e in history if e["input_seq"]})[1]
    produced = next(e["seq"] for e in history if e["input_seq"] == second)
    result = Replayer(load_app(str(GOLDEN / "loop.py"))[0]).replay(history, until=produced)
    assert result.ok and result.iterations == 2 and result.until == produced
    with pytest.raises(ReplayError, match="has no event at seq 999"):
        Replayer(load_app(str(GOLDEN / "loop.py"))[0]).replay(history, until=999)


def test_a_component_the_run_does_not_know_is_a_difference(tmp_path: Path) -> None:
    app = _changed(
        tmp_path, "chain", "        self.step = 0\n", "        self.step = 0\n        self.w_3 = Double()\n"
    )
    d = Replayer(app).replay(_history("chain")).differences[0]
    assert d.component == "root" and "root.w_3 that the run does not know" in d.message, d.message


def test_not_a_history_is_refused() -> None:
    with pytest.raises(ReplayError, match=r"no run\.created"):
        Replayer(load_app(str(GOLDEN / "chain.py"))[0]).replay([e for e in _history("chain") if e["seq"] > 1])
    with pytest.raises(ReplayError, match="not an event of a history"):
        Replayer(load_app(str(GOLDEN / "chain.py"))[0]).replay([{"nope": 1}])


def test_golden_histories_hold_no_path_of_the_machine_that_recorded_them() -> None:
    # A golden history compares what flows emit: only run.created may name where it was recorded.
    for name in NAMES:
        for e in _history(name):
            if e["type"] != "run.created" and e["type"] != "run.ended":
                assert os.sep + "tmp" not in json.dumps(e["body"]), (name, e)
