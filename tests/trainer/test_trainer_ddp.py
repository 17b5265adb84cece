"""DDP on 2 CPU processes (gloo): launched by the Trainer (script and spawn) and under torchrun.

With a mean loss, 2 ranks on batches of 2 with averaged gradients train exactly like one process
on batches of 4 (the DistributedSampler interleaves the samples), so the weights must agree.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import quiet_trainer

SCRIPTS = Path(__file__).parent / "ddp_scripts"
sys.path.insert(0, str(SCRIPTS))

from fit_two_ranks import Model  # noqa: E402


@pytest.fixture(scope="module")
def single_process_weights(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    model = Model(batch_size=4)
    quiet_trainer(tmp_path_factory.mktemp("single"), max_epochs=2).fit(model)
    return model.layer.weight.detach()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")
    }
    env["MASTER_ADDR"] = "127.0.0.1"
    return env


def _check(out: Path, expected: torch.Tensor) -> None:
    result: dict[str, Any] = torch.load(out)
    assert result["world_size"] == 2 and result["batches"] == 4 and result["global_step"] == 8
    assert result["rank_mean"] == 0.5  # sync_dist=True averaged rank 0's 0.0 and rank 1's 1.0
    assert result["gathered"] == [0.0, 1.0]
    assert result["broadcast"] == "from-0"
    torch.testing.assert_close(result["weight"], expected)


def test_ddp_launches_the_script_once_per_device(
    tmp_path: Path, single_process_weights: torch.Tensor
) -> None:
    out = tmp_path / "out.pt"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "fit_two_ranks.py"), str(out), "ddp"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(out, single_process_weights)


def test_under_torchrun(tmp_path: Path, single_process_weights: torch.Tensor) -> None:
    out = tmp_path / "out.pt"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(SCRIPTS / "fit_two_ranks.py"),
        str(out),
    ]
    proc = subprocess.run(command, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(out, single_process_weights)


def test_ddp_spawn_brings_results_back(
    tmp_path: Path, single_process_weights: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    model = Model()
    trainer = quiet_trainer(tmp_path, accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2)
    trainer.fit(model)
    torch.testing.assert_close(model.layer.weight.detach(), single_process_weights)
    assert trainer.global_step == 8 and trainer.state.status == "finished"
    assert float(trainer.callback_metrics["rank"]) == 0.5


def test_world_size_must_match_torchrun(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lightning_kernel.trainer import MisconfigurationException

    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(MisconfigurationException, match=r"WORLD_SIZE=4.*devices=2 x num_nodes=1"):
        quiet_trainer(tmp_path, accelerator="cpu", devices=2, strategy="ddp")
