"""``LearningRateMonitor``: log each optimizer's learning rate (and momentum, weight decay), as PL 2.x.

Names follow PL: ``lr-SGD`` for one optimizer with one parameter group, ``lr-Adam/pg1``,
``lr-Adam/pg2`` for several groups (or the group's ``name``), ``lr-Adam-1`` for a second Adam, the
scheduler config's ``name`` when it has one, and ``<name>-momentum``, ``<name>-weight_decay``.
"""

from collections import defaultdict
from typing import Any, Literal

import torch

from .._errors import MisconfigurationException
from ._base import Callback

Trainer = Any
LightningModule = Any


def _unwrap(optimizer: Any) -> Any:
    # LightningOptimizer-style wrappers keep the torch optimizer under `.optimizer`
    inner = getattr(optimizer, "optimizer", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else optimizer


class LearningRateMonitor(Callback):
    """Log learning rates to the Trainer's loggers.

    Args:
        logging_interval: ``"step"``, ``"epoch"``, or ``None`` to follow each scheduler's ``interval``.
        log_momentum: also log momentum (``betas[0]`` for Adam-like optimizers).
        log_weight_decay: also log weight decay.
    """

    def __init__(
        self,
        logging_interval: Literal["step", "epoch"] | None = None,
        log_momentum: bool = False,
        log_weight_decay: bool = False,
    ) -> None:
        if logging_interval not in (None, "step", "epoch"):
            raise MisconfigurationException(
                f"LearningRateMonitor(logging_interval={logging_interval!r}) must be 'step', 'epoch' or None."
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.lrs: dict[str, list[float]] = {}
        self.last_momentum_values: dict[str, float | None] = {}
        self.last_weight_decay_values: dict[str, float | None] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.loggers:
            raise MisconfigurationException(
                "Cannot use `LearningRateMonitor` callback with a `Trainer` that has no logger: pass "
                "`logger=True` (the default) or a logger instance, or remove the callback."
            )
        optimizers = [_unwrap(o) for o in trainer.optimizers]
        if self.log_momentum and not all(
            "momentum" in o.defaults or "betas" in o.defaults for o in optimizers
        ):
            import warnings

            warnings.warn(
                "LearningRateMonitor(log_momentum=True) but some optimizers have no `momentum` or `betas`: "
                "their momentum is logged as 0.",
                RuntimeWarning,
                stacklevel=2,
            )
        scheduler_names, seen, seen_types = self._find_names_from_schedulers(trainer.lr_scheduler_configs)
        names = list(scheduler_names)
        names.extend(self._find_names_from_optimizers(optimizers, seen, seen_types)[0])
        flat = [name for group in names for name in group]
        self.lrs = {name: [] for name in flat}
        self.last_momentum_values = {f"{name}-momentum": None for name in flat}
        self.last_weight_decay_values = {f"{name}-weight_decay": None for name in flat}

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval == "epoch":
            return
        # the Trainer sends metrics to loggers every `log_every_n_steps` optimizer steps: do the same
        if (trainer.global_step + 1) % trainer.log_every_n_steps != 0 and not trainer.should_stop:
            return
        stats = self._extract_stats(trainer, "step" if self.logging_interval is None else "any")
        if stats:
            for logger in trainer.loggers:
                logger.log_metrics(stats, step=trainer.global_step)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.logging_interval == "step":
            return
        stats = self._extract_stats(trainer, "epoch" if self.logging_interval is None else "any")
        if stats:
            for logger in trainer.loggers:
                logger.log_metrics(stats, step=trainer.global_step)

    def _extract_stats(self, trainer: Trainer, interval: str) -> dict[str, float]:
        stats: dict[str, float] = {}
        configs = list(trainer.lr_scheduler_configs)
        scheduler_names, seen, seen_types = self._find_names_from_schedulers(configs)
        self._remap_keys(scheduler_names)
        for names, config in zip(scheduler_names, configs, strict=True):
            if interval in (config.interval, "any"):
                stats.update(self._get_optimizer_stats(config.scheduler.optimizer, names))
        optimizers = [_unwrap(o) for o in trainer.optimizers]
        optimizer_names, without_scheduler = self._find_names_from_optimizers(optimizers, seen, seen_types)
        self._remap_keys(optimizer_names)
        for optimizer, names in zip(without_scheduler, optimizer_names, strict=True):
            stats.update(self._get_optimizer_stats(optimizer, names))
        # visible to other callbacks (EarlyStopping, ModelCheckpoint) as in PL
        for name, value in stats.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        return stats

    def _get_optimizer_stats(self, optimizer: torch.optim.Optimizer, names: list[str]) -> dict[str, float]:
        stats: dict[str, float] = {}
        use_betas = "betas" in optimizer.defaults
        for group, name in zip(optimizer.param_groups, names, strict=False):
            lr = float(group["lr"])
            self.lrs.setdefault(name, []).append(lr)
            stats[name] = lr
            if self.log_momentum:
                momentum = float(group["betas"][0] if use_betas else group.get("momentum", 0))
                self.last_momentum_values[f"{name}-momentum"] = momentum
                stats[f"{name}-momentum"] = momentum
            if self.log_weight_decay:
                decay = float(group.get("weight_decay", 0))
                self.last_weight_decay_values[f"{name}-weight_decay"] = decay
                stats[f"{name}-weight_decay"] = decay
        return stats

    def _remap_keys(self, names: list[list[str]], token: str = "/pg1") -> None:
        """A group added later turns ``lr-Adam`` into ``lr-Adam/pg1``: carry its history over."""
        for group in names:
            for new_name in group:
                old_name = new_name.replace(token, "")
                if token in new_name and old_name in self.lrs:
                    self.lrs[new_name] = self.lrs.pop(old_name)
                elif new_name not in self.lrs:
                    self.lrs[new_name] = []

    def _find_names_from_schedulers(
        self, configs: list[Any]
    ) -> tuple[list[list[str]], list[Any], defaultdict[type, int]]:
        names: list[list[str]] = []
        seen: list[Any] = []
        seen_types: defaultdict[type, int] = defaultdict(int)
        for config in configs:
            optimizer = config.scheduler.optimizer
            name = config.name if config.name is not None else "lr-" + type(optimizer).__name__
            names.append(self._check_duplicates_and_update_name(optimizer, name, seen, seen_types, config))
        return names, seen, seen_types

    def _find_names_from_optimizers(
        self, optimizers: list[Any], seen: list[Any], seen_types: defaultdict[type, int]
    ) -> tuple[list[list[str]], list[Any]]:
        names: list[list[str]] = []
        without_scheduler: list[Any] = []
        for optimizer in optimizers:
            if any(optimizer is s for s in seen):
                continue
            name = "lr-" + type(optimizer).__name__
            names.append(self._check_duplicates_and_update_name(optimizer, name, seen, seen_types, None))
            without_scheduler.append(optimizer)
        return names, without_scheduler

    def _check_duplicates_and_update_name(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        seen: list[Any],
        seen_types: defaultdict[type, int],
        config: Any,
    ) -> list[str]:
        seen.append(optimizer)
        optimizer_cls = type(optimizer)
        if config is None or config.name is None:
            seen_types[optimizer_cls] += 1
        groups = optimizer.param_groups
        group_names = [g.get("name", f"pg{i}") for i, g in enumerate(groups, start=1)]
        duplicates = {n for n in group_names if group_names.count(n) > 1}
        if duplicates:
            raise MisconfigurationException(
                "A single `Optimizer` cannot have multiple parameter groups with identical `name` values. "
                f"{name} has duplicated parameter group names {sorted(duplicates)}."
            )
        count = seen_types.get(optimizer_cls, 0)
        if count > 1:
            name = f"{name}-{count - 1}"
        return [self._add_suffix(name, groups, i) for i in range(len(groups))]

    @staticmethod
    def _add_suffix(name: str, groups: list[dict[str, Any]], index: int) -> str:
        if len(groups) > 1:
            return f"{name}/{groups[index].get('name', f'pg{index + 1}')}"
        group_name = groups[index].get("name")
        return f"{name}/{group_name}" if group_name else name
