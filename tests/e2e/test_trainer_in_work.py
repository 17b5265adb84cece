"""A Trainer inside a Work, through the real CLI: progress as Work state, checkpoints as Paths, resume.

The app is ``examples/train_then_evaluate.py``: a Work that only creates a Trainer and calls fit, and
a second Work that validates the best checkpoint the first one wrote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_then_evaluate.py"


def _trainer_states(lk: Any, work: str = "root.train") -> list[dict[str, Any]]:
    return [
        {**e["body"]["changes"]["trainer_state"], "ts": e["ts"], "attempt": e["body"].get("attempt", 0)}
        for e in lk.json_lines("history", "latest")
        if e["type"] == "work.state_changed"
        and e["body"]["work"] == work
        and "trainer_state" in e["body"]["changes"]
    ]


def test_example_trains_then_evaluates_the_best_checkpoint(lk: Any) -> None:
    proc = lk("run", "app", lk.app(EXAMPLE.read_text()), check=True, timeout=180)
    match = re.search(
        r"trained (\d+) steps; best val_loss [\d.]+ at (lit://checkpoints/\S+\.ckpt); its val_acc",
        proc.stdout,
    )
    assert match, proc.stdout
    assert int(match.group(1)) == 32  # 4 epochs of 8 batches

    states = _trainer_states(lk)
    steps = [s["global_step"] for s in states]
    assert steps == sorted(steps) and steps[-1] == 32
    assert states[0]["status"] == "running" and states[-1]["status"] == "finished"
    assert "val_loss" in states[-1]["metrics"] and "train_loss" in states[-1]["metrics"]
    assert states[-1]["best_checkpoint"]["path"] == match.group(2)
    assert states[-1]["checkpoint_dir"] == {
        "type": "__path__",
        "path": "lit://checkpoints",
        "origin": "root.train",
    }
    # throttled (at most 4 events a second, the last one always): far fewer events than steps
    assert len(states) < 32 // 2

    history = lk.json_lines("history", "latest")
    records = [
        (e["body"]["work"], e["body"]["kind"], e["body"]["data"])
        for e in history
        if e["type"] == "work.record"
    ]
    during = [
        d
        for w, k, d in records
        if w == "root.train" and k == "path.persisted" and d["path"] == "lit://checkpoints"
    ]
    # persisted as training went (after each epoch's checkpoint), not only when the Work ended
    assert len(during) >= 4
    transferred = [d["path"] for w, k, d in records if w == "root.evaluate" and k == "path.transferred"]
    assert transferred == [match.group(2)]
    final = lk.state()["root"]["works"]
    assert final["evaluate"]["vars"]["val_acc"] > 0.5
    assert final["evaluate"]["vars"]["trainer_state"]["stage"] == "validate"


def _uninterrupted_final_loss(tmp_path: Path, epochs: int) -> float:
    """The same training as the app's, in this process and never interrupted."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_then_evaluate", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = os.getcwd()
    os.environ["TRAIN_EPOCHS"] = str(epochs)
    try:
        sys.modules["train_then_evaluate"] = module
        spec.loader.exec_module(module)
        os.chdir(tmp_path)
        work = module.Train()
        work.run()
        return float(work.final_loss)
    finally:
        os.chdir(previous)
        os.environ.pop("TRAIN_EPOCHS", None)
        sys.modules.pop("train_then_evaluate", None)


def _wait_for_step(lk: Any, at_least: int, proc: Any, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended early ({proc.returncode}):\n{out}\n{err}")
        out = lk("state", "latest", "--json")
        if out.returncode == 0:
            state = json.loads(out.stdout)["root"]["works"]["train"]["vars"].get("trainer_state") or {}
            if state.get("global_step", 0) >= at_least:
                return int(state["global_step"])
        time.sleep(0.2)
    raise AssertionError("training made no progress")


def _wait_for_exit(pid: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # exited; its parent has not reaped it yet
        except FileNotFoundError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker {pid} is still running")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_interrupted_training_resumes_from_its_last_checkpoint(lk: Any, tmp_path: Path, how: int) -> None:
    epochs = 12
    lk.env.update({"TRAIN_EPOCHS": str(epochs), "TRAIN_STEP_S": "0.03", "LK_LEASE_S": "2"})
    proc = lk.popen("run", "app", lk.app(EXAMPLE.read_text()))
    _wait_for_step(lk, 12, proc)
    proc.send_signal(how)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    history = lk.json_lines("history", "latest")
    started = next(
        e["body"] for e in history if e["type"] == "work.worker_started" and e["body"]["work"] == "root.train"
    )
    worker, attempt = started["ref"]["pid"], started["attempt"]
    # a killed kernel leaves its worker running until the lease lapses; the worker then saves
    # last.ckpt at a batch end, persists it and exits (its last events have no NATS to go to)
    _wait_for_exit(worker)
    before = _trainer_states(lk)
    recorded = before[-1]["global_step"]
    folder = next((lk.dir / "data" / "works").iterdir()) / "root.train" / "checkpoints"
    stopped_at = int(torch.load(folder / "last.ckpt")["global_step"])  # weights_only: a plain checkpoint
    assert 12 <= recorded <= stopped_at < epochs * 8
    if how == signal.SIGTERM:
        assert before[-1]["status"] == "interrupted" and recorded == stopped_at
        assert before[-1]["last_checkpoint"]["path"] == "lit://checkpoints/last.ckpt"

    resumed = lk("resume", "latest", check=True, timeout=180)
    assert f"trained {epochs * 8} steps" in resumed.stdout, resumed.stdout
    after = _trainer_states(lk)[len(before) :]
    # after a kill -9 the old worker's last reports (NATS outlived the kernel) may only be recorded once
    # the resumed kernel catches up on the stream: they are the old attempt's, and go no further than its stop
    late = [s for s in after if s["attempt"] == attempt]
    assert all(s["global_step"] <= stopped_at for s in late) and (how == signal.SIGKILL or not late)
    after = [s for s in after if s["attempt"] != attempt]
    assert all(s["attempt"] > attempt for s in after)
    # the resumed fit starts at the interrupted step (its last.ckpt), not at 0, and goes on to the end
    assert after[0]["status"] == "running" and after[0]["global_step"] == stopped_at
    steps = [s["global_step"] for s in after]
    assert steps == sorted(steps) and steps[-1] == epochs * 8 and after[-1]["status"] == "finished"
    assert "Resuming root.train's training from" in lk("logs", "latest").stdout + lk("logs", "latest").stderr

    # the loss curve continued: same optimizer state, same data order, same final loss as a run never stopped
    final = lk.state()["root"]["works"]["train"]["vars"]["final_loss"]
    assert final == pytest.approx(_uninterrupted_final_loss(tmp_path, epochs), rel=1e-5)
