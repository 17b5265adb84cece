"""Callbacks and loggers under DDP: two CPU processes (gloo) launched by the Trainer itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ddp_callbacks_script.py")


def test_two_ranks_share_checkpoint_and_early_stopping_decisions(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # rank 1 stalls at epochs 2 and 3 (patience 2): both ranks stop after epoch 3
    assert [r["stopped_epoch"] for r in reports] == [3, 3]
    assert [r["current_epoch"] for r in reports] == [4, 4]
    # one folder, one set of files, written by rank zero; both ranks agree on the best path
    assert reports[0]["dirpath"] == reports[1]["dirpath"] == str(tmp_path / "ck")
    # a new best needs every rank's vote: rank 1 never beats its epoch-1 value, so epoch 1 stays best
    assert (
        reports[0]["best_model_path"]
        == reports[1]["best_model_path"]
        == str(tmp_path / "ck" / "epoch=1.ckpt")
    )
    assert sorted(os.listdir(tmp_path / "ck")) == [os.path.basename(reports[0]["best_model_path"])]
    # only rank zero logs
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0"]
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").exists()
