"""``configure_optimizers``: every return form PL 2.x accepts, scheduler configs, ``LightningOptimizer``."""

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer

from ._errors import MisconfigurationException

if TYPE_CHECKING:
    from ._trainer import Trainer

_FORMS = (
    "configure_optimizers() must return one of: an Optimizer; a list of Optimizers; "
    "([Optimizers], [LR schedulers]); {'optimizer': Optimizer, 'lr_scheduler': scheduler or config dict, "
    "'monitor': 'metric'}; a list of such dicts; or None (train without an optimizer)"
)
_OPT_DICT_KEYS = {"optimizer", "lr_scheduler", "monitor"}


@dataclasses.dataclass
class LRSchedulerConfig:
    """How and when the Trainer steps one LR scheduler (PL's ``lr_scheduler`` dict, as an object)."""

    scheduler: Any
    name: str | None = None
    interval: str = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: str | None = None
    strict: bool = True


class _MockOptimizer(Optimizer):
    """Stands in when ``configure_optimizers`` returns None, so the loops need no special case."""

    def __init__(self) -> None:
        super().__init__([torch.zeros(1)], {})

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def _is_optimizer(obj: Any) -> bool:
    return isinstance(obj, Optimizer) or (
        callable(getattr(obj, "step", None)) and hasattr(obj, "param_groups")
    )


def parse_optimizers(conf: Any) -> tuple[list[Optimizer], list[Any], str | None]:
    """Split a ``configure_optimizers`` result into optimizers, raw scheduler entries and a monitor."""
    if conf is None:
        warnings.warn(
            "`LightningModule.configure_optimizers` returned `None`, this fit will run with no optimizer",
            UserWarning,
            stacklevel=2,
        )
        return [_MockOptimizer()], [], None
    if _is_optimizer(conf):
        return [conf], [], None
    if isinstance(conf, Mapping):
        _check_opt_dict(conf)
        scheds = [conf["lr_scheduler"]] if "lr_scheduler" in conf else []
        return [conf["optimizer"]], scheds, conf.get("monitor")
    if isinstance(conf, (list, tuple)):
        if len(conf) == 2 and isinstance(conf[0], (list, tuple)) and all(_is_optimizer(o) for o in conf[0]):
            scheds = list(conf[1]) if isinstance(conf[1], (list, tuple)) else [conf[1]]
            return list(conf[0]), scheds, None
        if conf and all(isinstance(d, Mapping) for d in conf):
            for d in conf:
                _check_opt_dict(d)
            scheds = [
                dict(d["lr_scheduler"])
                if isinstance(d["lr_scheduler"], Mapping)
                else {"scheduler": d["lr_scheduler"]}
                for d in conf
                if "lr_scheduler" in d
            ]
            monitors = [d.get("monitor") for d in conf if d.get("monitor") is not None]
            return [d["optimizer"] for d in conf], scheds, monitors[0] if monitors else None
        if conf and all(_is_optimizer(o) for o in conf):
            return list(conf), [], None
    raise MisconfigurationException(f"{_FORMS}; got {type(conf).__name__}: {conf!r:.200}")


def _check_opt_dict(conf: Mapping[str, Any]) -> None:
    if "optimizer" not in conf:
        raise MisconfigurationException(
            f"the dict from configure_optimizers() has no 'optimizer' key. {_FORMS}"
        )
    extra = set(conf) - _OPT_DICT_KEYS
    if extra:
        warnings.warn(
            f"Found unsupported keys in the optimizer configuration: {extra}", RuntimeWarning, stacklevel=3
        )


def scheduler_configs(
    schedulers: Sequence[Any], monitor: str | None, automatic: bool
) -> list[LRSchedulerConfig]:
    fields = {f.name for f in dataclasses.fields(LRSchedulerConfig)}
    configs: list[LRSchedulerConfig] = []
    for entry in schedulers:
        if isinstance(entry, Mapping):
            extra = set(entry) - fields
            if extra:
                warnings.warn(
                    f"Found unsupported keys in the lr scheduler dict: {extra}. HINT: remove them from the output "
                    "of `configure_optimizers`.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            entry = {k: v for k, v in entry.items() if k in fields}
            if "scheduler" not in entry:
                raise MisconfigurationException(
                    'The lr scheduler dict must have the key "scheduler" with its item being an lr scheduler'
                )
            if entry.get("interval", "epoch") not in ("step", "epoch"):
                raise MisconfigurationException(
                    f'The "interval" key in lr scheduler dict must be "step" or "epoch" but is "{entry["interval"]}"'
                )
            frequency = entry.get("frequency", 1)
            if not isinstance(frequency, int) or frequency < 1:
                raise MisconfigurationException(
                    f'The "frequency" of an lr scheduler must be an int >= 1, got {frequency!r}'
                )
            plateau = entry.get("reduce_on_plateau", _is_plateau(entry["scheduler"]))
            entry = {**entry, "reduce_on_plateau": plateau}
            if plateau and entry.get("monitor") is None:
                entry["monitor"] = monitor
            if automatic and plateau and entry.get("monitor") is None:
                raise MisconfigurationException(
                    "The lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler is used. "
                    "For example: {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, "
                    "'monitor': 'your_loss'}}"
                )
            if (
                isinstance(entry["scheduler"], torch.optim.lr_scheduler.OneCycleLR)
                and entry.get("interval", "epoch") == "epoch"
            ):
                warnings.warn(
                    "A `OneCycleLR` scheduler is using 'interval': 'epoch'. Are you sure you didn't mean "
                    "'interval': 'step'?",
                    RuntimeWarning,
                    stacklevel=3,
                )
            config = LRSchedulerConfig(**entry)
        elif _is_plateau(entry):
            if automatic and monitor is None:
                raise MisconfigurationException(
                    "`configure_optimizers` must include a monitor when a `ReduceLROnPlateau` scheduler is used. "
                    "For example: {'optimizer': optimizer, 'lr_scheduler': scheduler, 'monitor': 'metric_to_track'}"
                )
            config = LRSchedulerConfig(entry, reduce_on_plateau=True, monitor=monitor)
        else:
            config = LRSchedulerConfig(entry)
        if not callable(getattr(config.scheduler, "step", None)):
            raise MisconfigurationException(
                f"The lr scheduler {config.scheduler!r} has no step() method; return a torch.optim.lr_scheduler object"
            )
        configs.append(config)
    return configs


def _is_plateau(scheduler: Any) -> bool:
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def check_scheduler_optimizers(optimizers: Sequence[Optimizer], configs: Sequence[LRSchedulerConfig]) -> None:
    for config in configs:
        opt = getattr(config.scheduler, "optimizer", None)
        if opt is not None and not any(opt is o for o in optimizers):
            raise MisconfigurationException(
                "Some schedulers are attached with an optimizer that wasn't returned from `configure_optimizers`."
            )


class LightningOptimizer:
    """The optimizer a module sees through ``self.optimizers()``: ``step`` goes through the precision
    plugin (gradient scaling, hooks) and counts ``trainer.global_step``; everything else is the wrapped
    optimizer's (its class is mixed in, so ``isinstance(opt, torch.optim.Adam)`` still holds).
    """

    if TYPE_CHECKING:
        param_groups: list[dict[str, Any]]
        state: dict[Any, Any]

    def __init__(self, optimizer: Optimizer, trainer: Any) -> None:
        # Any, not Trainer: the Trainer module imports this one (a real annotation must not be a string)
        self.__dict__ = {k: v for k, v in optimizer.__dict__.items() if k not in ("step", "__del__")}
        self.__class__ = type("Lightning" + type(optimizer).__name__, (type(self), type(optimizer)), {})
        self._optimizer = optimizer
        self._trainer = trainer
        self._on_after_step: Callable[[], None] = _do_nothing

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    def step(self, closure: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        if closure is not None and not callable(closure):
            raise MisconfigurationException(
                "When `optimizer.step(closure)` is called, the closure should be callable"
            )
        out = self._trainer._optimizer_step(
            self._optimizer, closure if closure is not None else _do_nothing, **kwargs
        )
        self._on_after_step()
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self._optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"LightningOptimizer({self._optimizer!r})"


def _do_nothing() -> None:
    return None


def step_schedulers(trainer: "Trainer", interval: str, plateau: bool, batches_that_stepped: int) -> None:
    """Step the schedulers due at this ``interval`` (PL's frequency and monitor rules)."""
    if not trainer._automatic_optimization:
        return
    for config in trainer.lr_scheduler_configs:
        if plateau != config.reduce_on_plateau or config.interval != interval:
            continue
        index = (batches_that_stepped if interval == "step" else trainer.current_epoch) + 1
        if index % config.frequency != 0:
            continue
        metric = None
        if config.reduce_on_plateau:
            assert config.monitor is not None
            metric = trainer.fit_loop._get_monitor_value(config.monitor)
            if metric is None:
                if config.strict:
                    raise MisconfigurationException(
                        f"ReduceLROnPlateau conditioned on metric {config.monitor} which is not available. "
                        f"Available metrics are: {list(trainer.callback_metrics)}. Condition can be set using "
                        "`monitor` key in lr scheduler dict"
                    )
                trainer._warn_once(
                    f"ReduceLROnPlateau conditioned on metric {config.monitor} which is not available but "
                    "strict is set to `False`. Skipping learning rate update."
                )
                continue
        trainer._call_module_hook("lr_scheduler_step", config.scheduler, metric)
