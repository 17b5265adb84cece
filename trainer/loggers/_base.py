"""The ``Logger`` base class, as in PyTorch Lightning 2.x, and the helpers its subclasses share.

The Trainer calls ``log_metrics(metrics, step)`` every ``log_every_n_steps`` and at epoch ends,
``log_hyperparams(params)`` once per fit, ``save()`` now and then and ``finalize(status)`` at the end.
Only global rank zero writes: under DDP every process builds the same logger, so the writing methods
of the concrete loggers return early elsewhere (see :func:`rank_zero_only`).
"""

import functools
import os
from abc import ABC, abstractmethod
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._fs import filesystem

_F = TypeVar("_F", bound=Callable[..., Any])


def global_rank() -> int:
    """This process's global rank: torch.distributed's when it is initialised, else ``RANK`` (torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return int(os.environ.get("RANK", "0"))


def rank_zero_only(fn: _F) -> _F:
    """Run ``fn`` on global rank zero only; elsewhere return ``None``."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if global_rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]  # same signature, by functools.wraps


class Logger(ABC):
    """Base class for experiment loggers."""

    @property
    @abstractmethod
    def name(self) -> str | None:
        """The experiment name: the folder under ``save_dir``."""

    @property
    @abstractmethod
    def version(self) -> int | str | None:
        """The experiment version: ``N`` of ``version_N``, or a string used as the folder name."""

    @property
    def root_dir(self) -> str | None:
        """The folder holding every version of this experiment, if the logger writes to disk."""
        return None

    @property
    def log_dir(self) -> str | None:
        """The folder this version writes to, if the logger writes to disk."""
        return None

    @property
    def save_dir(self) -> str | None:
        """The folder given to the logger, under which ``name/version_N`` lives."""
        return None

    @property
    def group_separator(self) -> str:
        """What joins a metric group and its name (``train/loss``)."""
        return "/"

    @abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record ``metrics`` (already scalars) at ``step``."""

    @abstractmethod
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record the hyper-parameters of the run."""

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the model's graph, where the logger can."""
        return None

    def save(self) -> None:
        """Flush what is buffered to storage."""
        return None

    def finalize(self, status: str) -> None:
        """Called once at the end of the run; ``status`` is ``"success"``, ``"failed"`` or ``"finished"``."""
        self.save()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Called after ModelCheckpoint wrote a checkpoint."""
        return None


class DummyExperiment:
    """Accepts any call and does nothing: the experiment of a non-zero rank or of a DummyLogger."""

    def nop(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, _: str) -> Callable[..., None]:
        return self.nop

    def __getitem__(self, idx: int) -> "DummyExperiment":
        return self

    def __setitem__(self, *args: Any) -> None:
        pass


class DummyLogger(Logger):
    """A logger that records nothing; the tuner puts it in place of real loggers during its trials."""

    def __init__(self) -> None:
        self._experiment = DummyExperiment()

    @property
    def experiment(self) -> "DummyExperiment":
        return self._experiment

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        pass


# -- helpers the concrete loggers share ---------------------------------------------------------------------


def convert_params(params: Mapping[str, Any] | Namespace | None) -> dict[str, Any]:
    """Hyper-parameters as a plain dict (an argparse ``Namespace`` or any mapping)."""
    if params is None:
        return {}
    if isinstance(params, Namespace):
        return dict(vars(params))
    return dict(params)


def flatten_dict(params: Mapping[Any, Any], delimiter: str = "/", parent_key: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; Namespaces count as mappings."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        new_key = f"{parent_key}{delimiter}{key}" if parent_key else str(key)
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            result.update(flatten_dict(value, delimiter, new_key))
        else:
            result[new_key] = value
    return result


def add_prefix(metrics: Mapping[str, Any], prefix: str, separator: str) -> dict[str, Any]:
    """``{"loss": 1}`` with prefix ``"train"`` -> ``{"train-loss": 1}``."""
    if not prefix:
        return dict(metrics)
    return {f"{prefix}{separator}{key}": value for key, value in metrics.items()}


def next_version(root_dir: str) -> int:
    """One more than the highest ``version_N`` folder in ``root_dir`` (any fsspec URL), or 0."""
    fs, inner = filesystem(root_dir)
    if not fs.isdir(inner):
        return 0
    versions = []
    for entry in fs.listdir(inner, detail=True):
        base = os.path.basename(str(entry["name"]).rstrip("/"))
        if entry.get("type") == "directory" and base.startswith("version_"):
            suffix = base.split("_", 1)[1]
            if suffix.isdigit():
                versions.append(int(suffix))
    return max(versions) + 1 if versions else 0


def save_hparams_to_yaml(path: str, hparams: Mapping[str, Any] | Namespace) -> None:
    """Write ``hparams`` to ``path`` (any fsspec URL) as YAML that ``yaml.safe_load`` reads back.

    A value YAML cannot represent safely is skipped with a warning, rather than written as a Python
    object tag that only an unsafe loader could read.
    """
    import warnings
    from enum import Enum

    import yaml

    allowed: dict[str, Any] = {}
    for key, value in convert_params(hparams).items():
        value = value.name if isinstance(value, Enum) else value
        try:
            yaml.safe_dump({key: value})  # the key too: a complex or tuple key is no plain YAML either
        except (yaml.YAMLError, TypeError, ValueError):
            warnings.warn(
                f"Skipping '{key}' parameter because it is not possible to safely dump to YAML.", stacklevel=2
            )
            continue
        allowed[key] = value
    fs, inner = filesystem(path)
    parent = os.path.dirname(inner)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(inner, "w") as f:
        yaml.safe_dump(allowed, f)


def load_hparams_from_yaml(path: str) -> dict[str, Any]:
    """Read what :func:`save_hparams_to_yaml` wrote; ``{}`` for a missing file."""
    import yaml

    fs, inner = filesystem(path)
    if not fs.exists(inner):
        return {}
    with fs.open(inner, "r") as f:
        loaded = yaml.safe_load(f)
    return dict(loaded or {})
