"""TensorBoardLogger writes real event files that TensorBoard's own reader loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning_kernel.trainer.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _scalars(log_dir: str, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(log_dir)
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_scalars_are_readable_by_tensorboard(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": torch.tensor(0.5), "acc": 0.25}, step=3)
    logger.log_metrics({"loss": 0.125}, step=4)
    logger.finalize("success")
    assert logger.log_dir == os.path.join(str(tmp_path), "lightning_logs", "version_0")
    assert _scalars(logger.log_dir, "loss") == [(3, 0.5), (4, 0.125)]
    assert _scalars(logger.log_dir, "acc") == [(3, 0.25)]


def test_hparams_go_to_the_hparams_plugin_and_yaml(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    logger = TensorBoardLogger(tmp_path, name="exp")
    with pytest.warns(
        UserWarning, match="Skipping 'act' parameter because it is not possible to safely dump to YAML"
    ):
        logger.log_hyperparams({"lr": 0.01, "net": {"depth": 3}, "act": torch.nn.ReLU})
    # written at log_hyperparams time, before anything is saved or finalized (as the CSV logger does)
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as f:
        assert yaml.safe_load(f) == {"lr": 0.01, "net": {"depth": 3}}
    logger.finalize("success")
    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(0.01)
    assert hparams["net/depth"].number_value == 3
    assert hparams["act"].string_value == "ReLU"
    assert _scalars(logger.log_dir, "hp_metric") == [(0, -1.0)]
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as f:
        assert yaml.safe_load(f) == {"lr": 0.01, "net": {"depth": 3}}


def test_default_hp_metric_off_and_explicit_metrics(tmp_path: Path) -> None:
    quiet = TensorBoardLogger(tmp_path, default_hp_metric=False)
    quiet.log_hyperparams({"lr": 0.1})
    quiet.log_metrics({"x": 1.0}, step=0)
    quiet.finalize("success")
    accumulator = EventAccumulator(quiet.log_dir)
    accumulator.Reload()
    assert "hp_metric" not in accumulator.Tags()["scalars"]
    explicit = TensorBoardLogger(tmp_path)
    explicit.log_hyperparams({"lr": 0.1}, metrics=0.75)
    explicit.finalize("success")
    assert _scalars(explicit.log_dir, "hp_metric") == [(0, 0.75)]


def test_versions_sub_dir_and_prefix(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path, sub_dir="fold1", prefix="train")
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")
    assert first.log_dir == os.path.join(str(tmp_path), "lightning_logs", "version_0", "fold1")
    assert _scalars(first.log_dir, "train-loss") == [(0, 1.0)]
    assert TensorBoardLogger(tmp_path).version == 1
    assert TensorBoardLogger(tmp_path, name="").log_dir == os.path.join(str(tmp_path), "version_0")


def test_unsupported_value_names_the_key(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    with pytest.raises(ValueError, match="cannot log 'bad'"):
        logger.log_metrics({"bad": "text"}, step=0)
    logger.finalize("failed")


def test_import_does_not_load_tensorboard() -> None:
    code = (
        "import sys, lightning_kernel.trainer.loggers as l; "
        "print(any(m.startswith(('tensorboard', 'torch.utils.tensorboard')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
