"""CSVLogger: PL's folder layout, metrics.csv content (header growth included) and hparams.yaml."""

from __future__ import annotations

import csv
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import BoringModel, quiet_trainer
from lightning_kernel.trainer.loggers import CSVLogger


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_layout_and_versions_count_up(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    assert first.name == "lightning_logs"
    assert first.version == 0
    assert first.log_dir == os.path.join(str(tmp_path), "lightning_logs", "version_0")
    first.log_metrics({"a": 1.0}, step=0)
    first.save()
    second = CSVLogger(tmp_path)
    assert second.version == 1
    named = CSVLogger(tmp_path, name="exp", version="run-a")
    assert named.log_dir == os.path.join(str(tmp_path), "exp", "run-a")
    assert named.root_dir == os.path.join(str(tmp_path), "exp")


def test_metrics_csv_rows_and_header_grows(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=2)
    logger.log_metrics({"loss": torch.tensor(0.5)}, step=0)
    logger.log_metrics({"loss": 0.25}, step=1)  # (1 + 1) % 2 == 0: flushed here
    metrics_file = os.path.join(logger.log_dir, "metrics.csv")
    assert [r["loss"] for r in _rows(metrics_file)] == ["0.5", "0.25"]
    logger.log_metrics({"val_loss": 0.75, "epoch": 0}, step=2)
    logger.finalize("success")
    rows = _rows(metrics_file)
    with open(metrics_file) as f:
        header = f.readline().strip().split(",")
    assert header == ["epoch", "loss", "step", "val_loss"]
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["val_loss"] == "" and rows[2]["val_loss"] == "0.75" and rows[2]["loss"] == ""


def test_prefix_joins_with_dash(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, prefix="train")
    logger.log_metrics({"loss": 1.0}, step=3)
    logger.save()
    rows = _rows(os.path.join(logger.log_dir, "metrics.csv"))
    assert rows == [{"step": "3", "train-loss": "1.0"}]


def test_hparams_yaml_skips_values_yaml_cannot_hold(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.warns(
        UserWarning, match="Skipping 'net' parameter because it is not possible to safely dump to YAML"
    ):
        logger.log_hyperparams(Namespace(lr=0.1, layers=[32, 64], net=object()))
        logger.save()
    with open(os.path.join(logger.log_dir, "hparams.yaml")) as f:
        assert yaml.safe_load(f) == {"lr": 0.1, "layers": [32, 64]}


def test_hparams_yaml_is_written_when_hyperparameters_are_logged(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    path = os.path.join(logger.log_dir, "hparams.yaml")
    with open(path) as f:  # no save() yet: PL writes the file in log_hyperparams
        assert yaml.safe_load(f) == {"lr": 0.1}
    logger.log_hyperparams({"batch_size": 4})
    with open(path) as f:
        assert yaml.safe_load(f) == {"lr": 0.1, "batch_size": 4}


def test_trainer_calls_log_metrics_by_keyword(tmp_path: Path) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class KeywordOnly(CSVLogger):
        def log_metrics(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            calls.append((args, kwargs))

    trainer = quiet_trainer(
        tmp_path, logger=KeywordOnly(tmp_path), limit_train_batches=2, log_every_n_steps=1
    )
    trainer.fit(BoringModel())
    assert calls and all(not args and set(kwargs) == {"metrics", "step"} for args, kwargs in calls)


def test_finalize_without_logging_leaves_no_folder(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.finalize("success")
    assert not (tmp_path / "lightning_logs" / "version_0").exists()


def test_writes_to_s3(s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec
    import s3fs

    # s3:// URLs carry no endpoint: fsspec's config points every S3FileSystem at moto for this test
    monkeypatch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}})
    s3fs.S3FileSystem.clear_instance_cache()
    logger = CSVLogger(f"s3://{s3_bucket}/logs", flush_logs_every_n_steps=1)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.finalize("success")
    fs = fsspec.filesystem("s3")
    text = fs.cat_file(f"{s3_bucket}/logs/lightning_logs/version_0/metrics.csv").decode()
    assert text.splitlines() == ["loss,step", "1.0,0", "0.5,1"]
    assert CSVLogger(f"s3://{s3_bucket}/logs").version == 1
