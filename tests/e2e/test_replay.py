"""``lightning-kernel replay`` on runs made by the real kernel: no difference, a changed flow named
(event, component, what differs), ``--json``, ``--until``/``--pdb`` in the foreground, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import EXE

APP = (Path(__file__).resolve().parents[1] / "golden" / "chain.py").read_text()
"""Two Works in a chain and a step counter (the golden history's app)."""


def _ran(lk: Any) -> list[dict[str, Any]]:
    lk("run", "app", lk.app(APP), check=True)
    return lk.json_lines("history", "latest")


def test_a_run_replays_with_its_own_code_and_no_difference(lk: Any) -> None:
    history = _ran(lk)
    iterations = len({e["input_seq"] for e in history if e["input_seq"]})
    out = lk("replay", "latest", check=True)
    run_id = lk.json_lines("runs")[0]["id"]
    assert out.stdout.strip() == f"replayed {iterations} iterations of {run_id}: no difference"
    # the flow's events carry the seq of the state they were computed from, which is before them
    for e in history:
        if e["input_seq"]:
            assert e["source"] == "kernel" and 0 < e["input_seq"] < e["seq"], e


def test_changed_flow_code_is_named_at_the_first_event_it_would_change(lk: Any) -> None:
    history = _ran(lk)
    changed = lk.app(APP.replace('self.w_1.run("a")', 'self.w_1.run("b")'), name="changed.py")
    out = lk("replay", "latest", "--app", changed)
    assert out.returncode == 1, out.stdout + out.stderr
    request = next(e for e in history if e["type"] == "work.run_requested")
    said = (
        f"at seq {request['seq']}, root.run() asked root.w_1 to run with args ['b']; the run recorded ['a']"
    )
    assert f"NondeterminismError: {said}" in out.stderr, out.stderr
    assert said in out.stdout.splitlines()[0]
    report = json.loads(lk("replay", "latest", "--app", changed, "--json").stdout)
    first = report["differences"][0]
    assert report["ok"] is False and first["component"] == "root.w_1" and first["seq"] == request["seq"]
    assert first["recorded"] == ["a"] and first["replayed"] == ["b"]


def test_until_with_pdb_stops_in_the_flow_as_it_was(lk: Any) -> None:
    history = _ran(lk)
    second = next(e for e in history if e["type"] == "work.run_requested" and e["body"]["work"] == "root.w_2")
    proc = subprocess.run(
        [*EXE, "replay", "latest", "--until", str(second["seq"]), "--pdb"],
        input="n\np ('SEEN', self.w_1.out, self.step)\nc\n",
        capture_output=True,
        text=True,
        env=lk.env,
        cwd=lk.dir,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the iteration that asked w_2 to run saw w_1's result, and the step the flow had before it
    assert "('SEEN', 'aa', 0)" in proc.stdout, proc.stdout
    assert f"up to seq {second['seq']}: no difference" in proc.stdout


def test_bad_input_is_named(lk: Any) -> None:
    _ran(lk)
    out = lk("replay", "latest", "--until", "999")
    assert out.returncode == 1 and "has no event at seq 999" in out.stderr, out.stderr
    out = lk("replay", "latest", "--pdb")
    assert out.returncode == 2 and "give --until" in out.stderr, out.stderr
    out = lk("replay", "no-such-run")
    assert out.returncode == 1 and "no-such-run" in out.stderr, out.stderr
    out = lk("replay", "latest", "--app", str(lk.dir / "missing.py"))
    assert out.returncode == 1 and "missing.py" in out.stderr, out.stderr
