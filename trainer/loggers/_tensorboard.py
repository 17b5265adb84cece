"""``TensorBoardLogger``: real TensorBoard event files, through ``torch.utils.tensorboard``.

The writer (and with it the ``tensorboard`` package, ~0.3 s to import) is loaded on first use, so
importing the trainer stays fast. Layout and behaviour follow PL 2.x: ``save_dir/name/version_N``
(``sub_dir`` below that), an ``hp_metric`` of -1 with the hyper-parameters unless
``default_hp_metric=False``, and ``hparams.yaml`` next to the event files.
"""

import os
import warnings
from argparse import Namespace
from enum import Enum
from typing import TYPE_CHECKING, Any

from .._fs import filesystem
from ._base import (
    Logger,
    add_prefix,
    convert_params,
    flatten_dict,
    next_version,
    rank_zero_only,
    save_hparams_to_yaml,
)

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

_SCALAR_TYPES = (bool, int, float, str)


def _sanitize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Values TensorBoard's hparams plugin accepts: scalars stay, everything else becomes its ``str``."""
    import torch

    clean: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Enum):
            value = value.name
        elif callable(value) and not isinstance(value, torch.Tensor):
            value = getattr(value, "__name__", str(value))
        if isinstance(value, torch.Tensor):
            value = value.item() if value.numel() == 1 else str(value.tolist())
        elif not isinstance(value, _SCALAR_TYPES):
            value = str(value)
        clean[key] = value
    return clean


class TensorBoardLogger(Logger):
    """Log to ``<save_dir>/<name>/version_<N>`` in TensorBoard's format.

    Args:
        save_dir: where to save the logs; any fsspec URL TensorBoard's writer can reach.
        name: the experiment name; ``""`` or ``None`` writes straight into ``save_dir``.
        version: ``N`` of ``version_N``, or a folder name; ``None`` takes the next free number.
        log_graph: add the model's graph (needs ``example_input_array`` on the module).
        default_hp_metric: log ``hp_metric = -1`` with the hyper-parameters, so TensorBoard's HParams
            tab shows the run before a real ``hp_metric`` is logged.
        prefix: prepended to every metric name, joined with ``-``.
        sub_dir: a folder below the version folder.
        kwargs: passed to ``torch.utils.tensorboard.SummaryWriter`` (``flush_secs``, ``max_queue``...).
    """

    NAME_HPARAMS_FILE = "hparams.yaml"
    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        self._sub_dir = None if sub_dir is None else os.fspath(sub_dir)
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self.hparams: dict[str, Any] = {}

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
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    def root_dir(self) -> str:
        name = self.name  # a subclass may define name (and version) as properties of its own
        return os.path.join(self.save_dir, name) if name else self.save_dir

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        log_dir = os.path.join(self.root_dir, version)
        if self._sub_dir is not None:
            log_dir = os.path.join(log_dir, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(log_dir))

    @property
    def experiment(self) -> "SummaryWriter":
        """The ``SummaryWriter``; made on first use (on rank zero; other ranks never call it)."""
        if self._experiment is None:
            from torch.utils.tensorboard import SummaryWriter

            fs, inner = filesystem(self.root_dir)
            fs.makedirs(inner, exist_ok=True)
            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace | None = None,
        metrics: dict[str, Any] | float | None = None,
        step: int | None = None,
    ) -> None:
        """Record ``params`` for ``hparams.yaml`` and TensorBoard's HParams tab, with ``metrics``
        (``hp_metric = -1`` by default) as the values the tab compares."""
        converted = convert_params(params)
        self.hparams.update(converted)
        # hparams.yaml now (with its folder), so that it is there while the run goes on, as the CSV one is
        fs, inner = filesystem(self.log_dir)
        fs.makedirs(inner, exist_ok=True)
        save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)
        flat = _sanitize_params(flatten_dict(converted))
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else None
        elif not isinstance(metrics, dict):
            metrics = {"hp_metric": metrics}
        if metrics:
            from torch.utils.tensorboard.summary import hparams

            self.log_metrics(metrics, step)
            exp, ssi, sei = hparams(flat, metrics)
            writer = self.experiment._get_file_writer()
            writer.add_summary(exp, step)
            writer.add_summary(ssi, step)
            writer.add_summary(sei, step)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for key, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, dict):
                self.experiment.add_scalars(key, value, step)
                continue
            try:
                self.experiment.add_scalar(key, value, step)
            except Exception as err:
                raise ValueError(
                    f"TensorBoardLogger cannot log {key!r} = {value!r} (a {type(value).__name__}): log a "
                    "number, a 0-dim tensor or a dict of numbers."
                ) from err

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        if not self._log_graph:
            return
        import torch

        input_array = getattr(model, "example_input_array", None) if input_array is None else input_array
        if input_array is None:
            warnings.warn(
                "Could not log computational graph to TensorBoard: The `model.example_input_array` attribute is not "
                "set or `input_array` was not given.",
                stacklevel=2,
            )
            return
        if not isinstance(input_array, (torch.Tensor, tuple)):
            warnings.warn(
                "Could not log computational graph to TensorBoard: The `input_array` or `model.example_input_array` "
                f"has type {type(input_array)} which can't be traced by TensorBoard. Make the input array a tuple "
                "representing the positional arguments to the model's `forward()` implementation.",
                stacklevel=2,
            )
            return
        from .._data import move_data_to_device
        from .._module import jit_tracing

        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        input_array = move_data_to_device(input_array, device)
        with warnings.catch_warnings(), jit_tracing():
            # SummaryWriter traces with torch.jit, which torch now marks deprecated: not the user's to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
            self.experiment.add_graph(model, input_array)

    @rank_zero_only
    def save(self) -> None:
        if self._experiment is not None:
            self._experiment.flush()
        fs, log_dir = filesystem(self.log_dir)
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        # written when the version folder exists and log_hyperparams has not written it
        if fs.isdir(log_dir) and not fs.isfile(os.path.join(log_dir, self.NAME_HPARAMS_FILE)):
            save_hparams_to_yaml(hparams_file, self.hparams)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
        if status == "success":
            self.save()

    def __getstate__(self) -> dict[str, Any]:
        # a SummaryWriter holds a thread and a file: a pickled logger (ddp_spawn) makes a new one
        state = self.__dict__.copy()
        state["_experiment"] = None
        return state
