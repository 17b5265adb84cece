"""``self.log``: where logged values go, how they are reduced, and what reaches the loggers.

Values stay tensors. A step value is kept as the last one logged (no copy of the graph, no
``.item()``); epoch values are appended to a list and reduced once, when the epoch's metrics are
read. The three dicts the Trainer exposes (``callback_metrics``, ``logged_metrics``,
``progress_bar_metrics``) are filled when someone reads them or when a phase ends, not after every
batch: that per-batch rebuild is most of what ``self.log`` costs in PyTorch Lightning. Keys, defaults
per hook and reductions are PL 2.x's.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ._errors import MisconfigurationException

if TYPE_CHECKING:
    from ._trainer import Trainer

DATALOADER_SUFFIX = "/dataloader_idx_{}"
_FOLD_EVERY = 4096  # epoch lists are folded into one entry past this length to bound memory


class _FxOptions(NamedTuple):
    allowed_on_step: tuple[bool, ...]
    allowed_on_epoch: tuple[bool, ...]
    default_on_step: bool
    default_on_epoch: bool


_STEP = _FxOptions((False, True), (False, True), True, False)
_EPOCH_ONLY = _FxOptions((False,), (True,), False, True)
_EVAL = _FxOptions((False, True), (False, True), False, True)

# PL 2.x's table of where `self.log` may be called; absent names may not log.
FX_OPTIONS: dict[str, _FxOptions] = {
    "training_step": _STEP,
    "on_before_backward": _STEP,
    "backward": _STEP,
    "on_after_backward": _STEP,
    "configure_gradient_clipping": _STEP,
    "clip_gradients": _STEP,
    "on_before_optimizer_step": _STEP,
    "optimizer_step": _STEP,
    "on_before_zero_grad": _STEP,
    "optimizer_zero_grad": _STEP,
    "on_train_batch_start": _STEP,
    "on_train_batch_end": _STEP,
    "validation_step": _EVAL,
    "test_step": _EVAL,
    "on_validation_batch_start": _EVAL,
    "on_validation_batch_end": _EVAL,
    "on_test_batch_start": _EVAL,
    "on_test_batch_end": _EVAL,
    "on_train_start": _EPOCH_ONLY,
    "on_train_epoch_start": _EPOCH_ONLY,
    "on_train_epoch_end": _EPOCH_ONLY,
    "on_validation_start": _EPOCH_ONLY,
    "on_validation_epoch_start": _EPOCH_ONLY,
    "on_validation_epoch_end": _EPOCH_ONLY,
    "on_test_start": _EPOCH_ONLY,
    "on_test_epoch_start": _EPOCH_ONLY,
    "on_test_epoch_end": _EPOCH_ONLY,
    # the seed's epoch-end hooks (deprecated) log like their PL 1.x successors
    "training_epoch_end": _EPOCH_ONLY,
    "validation_epoch_end": _EPOCH_ONLY,
    "test_epoch_end": _EPOCH_ONLY,
}

_REDUCTIONS: dict[Any, str] = {
    "mean": "mean",
    "avg": "mean",
    torch.mean: "mean",
    "sum": "sum",
    torch.sum: "sum",
    sum: "sum",
    "max": "max",
    torch.max: "max",
    max: "max",
    "min": "min",
    torch.min: "min",
    min: "min",
}


def is_torchmetric(value: Any) -> bool:
    """Whether ``value`` is a ``torchmetrics.Metric`` (without importing torchmetrics: if nobody did,
    no value can be one)."""
    module = sys.modules.get("torchmetrics")
    return module is not None and isinstance(value, module.Metric)


def is_metric_collection(value: Any) -> bool:
    module = sys.modules.get("torchmetrics")
    return module is not None and isinstance(value, module.MetricCollection)


def _float_dtype() -> torch.dtype:
    dtype = torch.get_default_dtype()
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class _Metric:
    """One logged key of one hook (and dataloader): its options, last value and epoch values."""

    __slots__ = (
        "add_dl_idx",
        "args",
        "computed",
        "dl_idx",
        "fx",
        "last",
        "logger",
        "name",
        "on_epoch",
        "on_step",
        "prog_bar",
        "reduce",
        "sizes",
        "sync",
        "tm",
        "updated",
        "values",
    )

    def __init__(self, fx: str, name: str, args: tuple[Any, ...], opts: dict[str, Any]) -> None:
        self.fx, self.name, self.args = fx, name, args
        self.prog_bar: bool = opts["prog_bar"]
        self.logger: bool = opts["logger"]
        self.on_step: bool = opts["on_step"]
        self.on_epoch: bool = opts["on_epoch"]
        self.reduce: str = opts["reduce"]
        self.sync: bool = opts["sync"]
        self.dl_idx: int | None = opts["dl_idx"]
        self.add_dl_idx: bool = opts["add_dl_idx"]
        self.last: Tensor | None = None
        self.values: list[Tensor] = []
        self.sizes: list[float] = []
        self.updated = False
        self.tm: Any = None  # a logged torchmetrics.Metric: its compute() is the epoch value
        self.computed: Tensor | None = None

    def names(self, on_step: bool) -> tuple[str, str]:
        name = self.name
        forked = f"{name}_{'step' if on_step else 'epoch'}" if self.on_step and self.on_epoch else name
        if self.add_dl_idx and self.dl_idx is not None:
            suffix = DATALOADER_SUFFIX.format(self.dl_idx)
            return name + suffix, forked + suffix
        return name, forked

    def fold(self) -> None:
        value, size = self._reduce_local()
        self.values, self.sizes = [value], [size]

    def _reduce_local(self) -> tuple[Tensor, float]:
        stacked = torch.stack(self.values)
        if self.reduce == "mean":
            weights = torch.tensor(self.sizes, dtype=stacked.dtype, device=stacked.device)
            total = float(sum(self.sizes))
            return (stacked * weights).sum() / total, total
        if self.reduce == "sum":
            return stacked.sum(), 1.0
        return (stacked.max() if self.reduce == "max" else stacked.min()), 1.0

    def compute(self, trainer: Trainer) -> Tensor | None:
        if self.tm is not None:
            if self.computed is None:
                value = self.tm.compute()  # the metric syncs its own states across processes
                if not isinstance(value, Tensor):
                    raise ValueError(
                        f"The `.compute()` return of the metric logged as {self.name!r} must be a tensor. "
                        f"Found {value}"
                    )
                self.computed = value.detach()
            return self.computed
        if not self.values:
            return None
        value, size = self._reduce_local()
        if self.sync and trainer.world_size > 1:
            if self.reduce == "mean":
                pair = torch.stack([value * size, torch.tensor(size, dtype=value.dtype, device=value.device)])
                pair = trainer.strategy.reduce(pair, "sum")
                return pair[0] / pair[1]
            return trainer.strategy.reduce(value, self.reduce)
        return value


class ResultCollection:
    """The logged values of one loop (training, validation or test)."""

    def __init__(self, training: bool) -> None:
        self.training = training
        self._metrics: dict[tuple[str, str, int | None], _Metric] = {}
        self.batch: Any = None
        self.batch_size: int | None = None
        self.dataloader_idx: int | None = None

    def __bool__(self) -> bool:
        return True

    def log(
        self,
        trainer: Trainer,
        fx: str | None,
        name: str,
        value: Any,
        prog_bar: bool,
        logger: bool | None,
        on_step: bool | None,
        on_epoch: bool | None,
        reduce_fx: Any,
        enable_graph: bool,
        sync_dist: bool,
        add_dataloader_idx: bool,
        batch_size: int | None,
        rank_zero_only: bool,
    ) -> None:
        dl_idx = self.dataloader_idx
        key = (fx or "", name, dl_idx if add_dataloader_idx else None)
        metric = self._metrics.get(key)
        args = (prog_bar, logger, on_step, on_epoch, reduce_fx, enable_graph, sync_dist, add_dataloader_idx)
        if metric is None:
            opts = _options(
                fx,
                name,
                value,
                prog_bar,
                logger,
                on_step,
                on_epoch,
                reduce_fx,
                sync_dist,
                rank_zero_only,
                dl_idx,
                add_dataloader_idx,
                trainer,
            )
            metric = self._metrics[key] = _Metric(fx or "", name, args, opts)
        elif metric.args != args:
            # what is wrong with the new arguments is said first, as PL checks them before comparing
            _options(fx, name, value, prog_bar, logger, on_step, on_epoch, reduce_fx, sync_dist, rank_zero_only,
                     dl_idx, add_dataloader_idx, trainer)  # fmt: skip
            raise MisconfigurationException(
                f"You called `self.log({name}, ...)` twice in `{fx}` with different arguments. This is not allowed"
            )
        if metric.tm is not None or is_torchmetric(value):
            self._log_torchmetric(metric, value, enable_graph)
            return
        value = _as_tensor(value, name, fx, enable_graph, trainer)
        if metric.on_step:
            metric.last = value
            if metric.sync and trainer.world_size > 1:
                metric.last = trainer.strategy.reduce(value.clone(), metric.reduce)
        if metric.on_epoch:
            if metric.reduce == "mean":
                if batch_size is None:
                    if self.batch_size is None:
                        self.batch_size = extract_batch_size(self.batch) if self.batch is not None else 1
                    batch_size = self.batch_size
                metric.sizes.append(float(batch_size))
            else:
                metric.sizes.append(1.0)
            metric.values.append(value)
            if len(metric.values) >= _FOLD_EVERY:
                metric.fold()
        metric.updated = True

    @staticmethod
    def _log_torchmetric(metric: _Metric, value: Any, enable_graph: bool) -> None:
        """A ``torchmetrics.Metric`` (updated by the step): the batch value its forward computed is the step
        value, its ``compute()`` over the epoch the epoch value; it is reset when the results are."""
        if not is_torchmetric(value):
            raise MisconfigurationException(
                f"You called `self.log({metric.name!r}, ...)` with a `torchmetrics.Metric` before; log the same "
                f"kind of value each time, not a {type(value).__name__}"
            )
        metric.tm = value
        metric.computed = None
        if metric.on_step:
            cache = value._forward_cache
            metric.last = cache if cache is None or enable_graph else cache.detach()
        metric.updated = True

    def metrics(
        self, trainer: Trainer, on_step: bool, dataloader_idx: int | str | None = "any"
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """``(callback, log, progress_bar)`` dicts of the step or the epoch values."""
        callback: dict[str, Tensor] = {}
        log: dict[str, Tensor] = {}
        pbar: dict[str, Tensor] = {}
        for m in self._metrics.values():
            if not m.updated or (dataloader_idx != "any" and m.dl_idx != dataloader_idx):
                continue
            if on_step:
                if not m.on_step or m.last is None:
                    continue
                value: Tensor = m.last
            else:
                if not m.on_epoch:
                    continue
                computed = m.compute(trainer)
                if computed is None:
                    continue
                value = computed
            name, forked = m.names(on_step)
            if m.logger:
                log[forked] = value
            if self.training or (m.on_epoch and not on_step):
                callback[name] = value
                callback[forked] = value
            if m.prog_bar:
                pbar[forked] = value
        return callback, log, pbar

    def reset(self) -> None:
        for m in self._metrics.values():
            m.last = None
            m.values = []
            m.sizes = []
            if m.tm is not None and m.updated:
                m.tm.reset()  # PL resets logged metrics once their epoch is over
                m.computed = None
            m.updated = False


def _options(
    fx: str | None,
    name: str,
    value: Any,
    prog_bar: bool,
    logger: bool | None,
    on_step: bool | None,
    on_epoch: bool | None,
    reduce_fx: Any,
    sync_dist: bool,
    rank_zero_only: bool,
    dl_idx: int | None,
    add_dl_idx: bool,
    trainer: Trainer,
) -> dict[str, Any]:
    """Validate a first ``self.log`` call of a key and fill in PL's defaults for its hook."""
    if fx is None:
        raise MisconfigurationException(
            "You are trying to `self.log()` but it is not managed by the `Trainer` control flow"
        )
    hook = fx[len("Callback.") :] if fx.startswith("Callback.") else fx
    fx_opts = FX_OPTIONS.get(hook)
    if fx_opts is None:
        raise MisconfigurationException(
            f"You can't `self.log()` inside `{hook}`. HINT: You can still log directly to the logger by using "
            "`self.logger.experiment`."
        )
    if on_step is None:
        on_step = fx_opts.default_on_step
    if on_epoch is None:
        on_epoch = fx_opts.default_on_epoch
    if on_step not in fx_opts.allowed_on_step:
        raise MisconfigurationException(
            f"You can't `self.log(on_step={on_step})` inside `{hook}`, must be one of {fx_opts.allowed_on_step}."
        )
    if on_epoch not in fx_opts.allowed_on_epoch:
        raise MisconfigurationException(
            f"You can't `self.log(on_epoch={on_epoch})` inside `{hook}`, must be one of {fx_opts.allowed_on_epoch}."
        )
    if not on_step and not on_epoch:
        raise MisconfigurationException("`self.log(on_step=False, on_epoch=False)` is not useful.")
    if is_torchmetric(value):
        reduce_fx = "mean"  # a metric reduces itself; PL ignores the option for it
        sync_dist = False  # and syncs itself
    elif isinstance(value, Mapping):
        if any(isinstance(v, Mapping) for v in value.values()):
            raise ValueError(
                f"`self.log({name}, {value})` was called, but nested dictionaries cannot be logged"
            )
        raise ValueError(
            f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values cannot be logged"
        )
    if add_dl_idx and DATALOADER_SUFFIX.format("") in name:
        raise MisconfigurationException(
            f"You called `self.log` with the key `{name}` but it should not contain information about "
            "`dataloader_idx` when `add_dataloader_idx=True`"
        )
    key = reduce_fx.lower() if isinstance(reduce_fx, str) else reduce_fx
    try:
        reduce = _REDUCTIONS.get(key)
    except TypeError:  # an unhashable value
        reduce = None
    if reduce is None:
        raise MisconfigurationException(
            "Only `self.log(..., reduce_fx={min,max,mean,sum})` are supported. If you need a custom reduction, "
            f"please log a `torchmetrics.Metric` instance instead. Found: {key}"
        )
    if logger is True and not trainer.loggers:
        trainer._warn_once(
            f"You called `self.log({name!r}, ..., logger=True)` but have no logger configured. You can enable "
            "one by doing `Trainer(logger=ALogger(...))`. Remove `logger=True` to remove this warning."
        )
    return {
        "prog_bar": prog_bar,
        "logger": True if logger is None else logger,
        "on_step": on_step,
        "on_epoch": on_epoch,
        "reduce": reduce,
        "sync": sync_dist and not rank_zero_only,
        "dl_idx": dl_idx,
        "add_dl_idx": add_dl_idx,
    }


def _as_tensor(value: Any, name: str, fx: str | None, enable_graph: bool, trainer: Trainer) -> Tensor:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"`self.log({name}, {value})` was called, but the tensor must have a single element. "
                f"You can try doing `self.log({name}, {value}.mean())`"
            )
        if not enable_graph:
            # a leaf may be a buffer the caller keeps changing in place: keep the value of now
            value = value.detach().clone() if value.is_leaf else value.detach()
        if value.dtype not in (torch.float32, torch.float64):
            if not torch.is_floating_point(value):
                trainer._warn_once(
                    f"You called `self.log({name!r}, ...)` in your `{fx}` but the value needs to be floating to be "
                    f"reduced. Converting it to {_float_dtype()}."
                )
            value = value.to(_float_dtype())
        return value if value.ndim == 0 else value.reshape(())
    if not isinstance(value, (int, float)):
        raise ValueError(
            f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values cannot be logged"
        )
    return torch.tensor(float(value), dtype=_float_dtype(), device=trainer.strategy.root_device)


def extract_batch_size(batch: Any) -> int:
    """The length of the first tensor found in ``batch`` (PL's rule for weighting epoch means)."""
    if isinstance(batch, Tensor):
        return 1 if batch.ndim == 0 else int(batch.size(0))
    if isinstance(batch, (str, bytes)):
        return len(batch)
    if isinstance(batch, Mapping):
        for v in batch.values():
            size = _maybe_size(v)
            if size is not None:
                return size
    elif isinstance(batch, (list, tuple)):
        for v in batch:
            size = _maybe_size(v)
            if size is not None:
                return size
    return 1


def _maybe_size(value: Any) -> int | None:
    if isinstance(value, Tensor):
        return 1 if value.ndim == 0 else int(value.size(0))
    if isinstance(value, (Mapping, list, tuple)):
        return extract_batch_size(value)
    return None


def to_scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, Tensor) else v) for k, v in metrics.items()}
