"""``CSVLogger``: metrics to ``metrics.csv`` and hyper-parameters to ``hparams.yaml``, as PL 2.x writes them.

Rows are buffered and appended every ``flush_logs_every_n_steps`` steps (and on ``save``/``finalize``),
because opening a file per logged step would cost more than the training step it records. A new
metric name that appears after the header was written makes the file be rewritten with the wider
header, so every row keeps its columns (PL does the same).
"""

import csv
import io
import os
from argparse import Namespace
from typing import Any

from .._fs import filesystem
from .._rank_zero import rank_zero_warn
from ._base import (
    Logger,
    add_prefix,
    convert_params,
    next_version,
    rank_zero_only,
    save_hparams_to_yaml,
)


class ExperimentWriter:
    """Buffers metric rows and writes them to ``<log_dir>/metrics.csv``; holds the hyper-parameters."""

    NAME_METRICS_FILE = "metrics.csv"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.hparams: dict[str, Any] = {}
        self._hparams_dirty = True
        self.metrics: list[dict[str, Any]] = []
        self.metrics_keys: list[str] = []
        self._fs, self._dir = filesystem(log_dir)
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self._metrics_file = os.path.join(self._dir, self.NAME_METRICS_FILE)
        if self._fs.isdir(self._dir) and self._fs.ls(self._dir):
            rank_zero_warn(
                f"Experiment logs directory {log_dir} exists and is not empty. Previous log files in this directory "
                "will be deleted when the new ones are saved!"
            )
            if self._fs.isfile(self._metrics_file):
                self._fs.rm_file(self._metrics_file)  # this run's rows start a new file, as in PL
        self._fs.makedirs(self._dir, exist_ok=True)

    def log_hparams(self, params: dict[str, Any]) -> None:
        # written now, as PL does: tools read hparams.yaml while the run goes on
        self.hparams.update(params)
        save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)
        self._hparams_dirty = False

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if step is None:
            step = len(self.metrics)
        row = {key: value.item() if hasattr(value, "item") else value for key, value in metrics.items()}
        row["step"] = step
        self.metrics.append(row)

    def save(self) -> None:
        if self._hparams_dirty:
            save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)
            self._hparams_dirty = False
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        exists = self._fs.isfile(self._metrics_file)
        if exists and new_keys:
            self._rewrite_with_header()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        if not exists:
            writer.writeheader()
        writer.writerows(self.metrics)
        self._append(buffer.getvalue(), exists)
        self.metrics = []

    def _record_new_keys(self) -> set[str]:
        current = set().union(*self.metrics)
        new_keys = current - set(self.metrics_keys)
        self.metrics_keys.extend(new_keys)
        self.metrics_keys.sort()
        return new_keys

    def _rewrite_with_header(self) -> None:
        with self._fs.open(self._metrics_file, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        with self._fs.open(self._metrics_file, "w", newline="") as f:
            f.write(buffer.getvalue())

    def _append(self, text: str, exists: bool) -> None:
        try:
            with self._fs.open(self._metrics_file, "a" if exists else "w", newline="") as f:
                f.write(text)
        except (NotImplementedError, ValueError):
            # object stores (s3://) cannot append: rewrite the object with the new rows at the end
            previous = self._fs.cat_file(self._metrics_file).decode() if exists else ""
            self._fs.pipe_file(self._metrics_file, (previous + text).encode())


class CSVLogger(Logger):
    """Log to ``<save_dir>/<name>/version_<N>/metrics.csv`` (and ``hparams.yaml``).

    Args:
        save_dir: where to save the logs; any fsspec URL.
        name: the experiment name, a folder under ``save_dir``; ``""`` or ``None`` writes straight
            into ``save_dir``.
        version: ``N`` of ``version_N``, or a folder name; ``None`` takes the next free number.
        prefix: prepended to every metric name, joined with ``-``.
        flush_logs_every_n_steps: how often (in logged steps) buffered rows reach the file.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__()
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._flush_logs_every_n_steps = flush_logs_every_n_steps
        self._experiment: ExperimentWriter | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None:
            self._version = next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self.save_dir, self.name)

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        return os.path.join(self.root_dir, version)

    @property
    def experiment(self) -> ExperimentWriter:
        """The writer; made (with its folder) on first use."""
        if self._experiment is None:
            self._experiment = ExperimentWriter(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any
    ) -> None:
        self.experiment.log_hparams(convert_params(params))

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is None:
            step = len(self.experiment.metrics)
        self.experiment.log_metrics(metrics, step)
        if (step + 1) % self._flush_logs_every_n_steps == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        super().save()
        self.experiment.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is None:
            # nothing was logged: do not leave an empty version folder behind
            return
        self.save()
