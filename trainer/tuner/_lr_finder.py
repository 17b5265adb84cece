"""The learning-rate range test (Leslie Smith's, as PL 2.x's ``lr_find`` runs it).

The learning rate grows from ``min_lr`` to ``max_lr`` over ``num_training`` optimizer steps
(exponentially or linearly), the smoothed loss is recorded at each, and the suggestion is the
rate where the loss falls fastest. The run stops early once the smoothed loss exceeds
``early_stop_threshold`` times the best seen (it diverged).

The schedule is put in place by wrapping the module's ``configure_optimizers`` for the trial: the
optimizer the user returns is kept (with its learning rates set to ``min_lr``) and the user's
schedulers are replaced by the range-test scheduler, stepped every optimizer step.
"""

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .._errors import MisconfigurationException
from ..callbacks._base import Callback
from ._attr import TunerAttributeError, lightning_hasattr


class _ExponentialLR(LRScheduler):
    """From each group's initial lr to ``end_lr`` in ``num_iter`` steps, geometrically."""

    def __init__(self, optimizer: torch.optim.Optimizer, end_lr: float, num_iter: int, last_epoch: int = -1):
        self.end_lr = end_lr
        self.num_iter = num_iter
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        r = (self.last_epoch + 1) / self.num_iter
        if self.last_epoch > 0:
            return [base * (self.end_lr / base) ** r for base in self.base_lrs]
        return list(self.base_lrs)


class _LinearLR(LRScheduler):
    """From each group's initial lr to ``end_lr`` in ``num_iter`` steps, linearly."""

    def __init__(self, optimizer: torch.optim.Optimizer, end_lr: float, num_iter: int, last_epoch: int = -1):
        self.end_lr = end_lr
        self.num_iter = num_iter
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        r = (self.last_epoch + 1) / self.num_iter
        if self.last_epoch > 0:
            return [base + r * (self.end_lr - base) for base in self.base_lrs]
        return list(self.base_lrs)


def _optimizers_in(result: Any) -> list[torch.optim.Optimizer]:
    """Every optimizer in any of ``configure_optimizers``'s return forms."""
    if isinstance(result, torch.optim.Optimizer):
        return [result]
    if isinstance(result, dict):
        return _optimizers_in(result.get("optimizer"))
    if isinstance(result, list | tuple):
        return [opt for item in result for opt in _optimizers_in(item)]
    return []


class _LRFinder:
    """The result of :meth:`Tuner.lr_find`: ``results`` (``{"lr": [...], "loss": [...]}``) and the
    suggested learning rate."""

    def __init__(self, mode: str, lr_min: float, lr_max: float, num_training: int) -> None:
        if mode not in ("linear", "exponential"):
            raise MisconfigurationException(f"lr_find(mode={mode!r}) must be 'linear' or 'exponential'.")
        self.mode = mode
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.num_training = num_training
        self.results: dict[str, Any] = {}
        self._optimal_idx: int | None = None

    def _wrap_configure_optimizers(self, model: Any) -> None:
        """Replace, on this instance only, ``configure_optimizers`` by one that installs the schedule."""
        original = model.configure_optimizers
        finder = self

        def configure_optimizers() -> Any:
            optimizers = _optimizers_in(original())
            if len(optimizers) != 1:
                raise MisconfigurationException(
                    f"`model.configure_optimizers()` returned {len(optimizers)} optimizers, but the learning "
                    "rate finder only works with a single optimizer."
                )
            optimizer = optimizers[0]
            for group in optimizer.param_groups:
                group["lr"] = finder.lr_min
                group["initial_lr"] = finder.lr_min
            scheduler_cls = _LinearLR if finder.mode == "linear" else _ExponentialLR
            scheduler = scheduler_cls(optimizer, finder.lr_max, finder.num_training)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

        model.configure_optimizers = configure_optimizers

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """The learning rate where the smoothed loss falls fastest, ignoring ``skip_begin`` points at
        the start and ``skip_end`` at the end; ``None`` when fewer than two usable points remain."""
        losses = torch.tensor(self.results["loss"][skip_begin:-skip_end], dtype=torch.float64)
        lrs = torch.tensor(self.results["lr"][skip_begin:-skip_end], dtype=torch.float64)
        finite = torch.isfinite(losses)
        losses, lrs = losses[finite], lrs[finite]
        if len(losses) < 2:
            import logging

            logging.getLogger("lightning_kernel.trainer.tuner.lr_finder").error(
                "Failed to compute suggestion for learning rate because there are not enough points. Increase the "
                "loop iteration limits or the size of your dataset/dataloader."
            )
            self._optimal_idx = None
            return None
        # the slope against the axis the rates were spread on (log10 for an exponential range), as PL 2.6
        spacing = torch.log10(lrs) if self.mode == "exponential" else lrs
        gradients = torch.gradient(losses, spacing=[spacing])[0]
        min_grad = int(torch.argmin(gradients).item())
        indices = torch.arange(len(self.results["loss"]))[skip_begin:-skip_end][finite]
        self._optimal_idx = int(indices[min_grad].item())
        return float(self.results["lr"][self._optimal_idx])

    def plot(self, suggest: bool = False, show: bool = False, ax: Any = None) -> Any:
        """Plot loss against learning rate with matplotlib (which must be installed)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise MisconfigurationException(
                "_LRFinder.plot needs matplotlib: pip install matplotlib"
            ) from err
        lrs, losses = self.results["lr"], self.results["loss"]
        fig = None
        if ax is None:
            fig, ax = plt.subplots()
        ax.plot(lrs, losses)
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        if suggest and self.suggestion() is not None and self._optimal_idx is not None:
            ax.plot(lrs[self._optimal_idx], losses[self._optimal_idx], markersize=10, marker="o", color="red")
        if show:
            plt.show()
        return fig


class _LRCallback(Callback):
    """Records the learning rate before each optimizer step and the smoothed loss after it, and
    stops the trial when the loss diverges."""

    def __init__(
        self, num_training: int, early_stop_threshold: float | None = 4.0, beta: float = 0.98
    ) -> None:
        self.num_training = num_training
        self.early_stop_threshold = early_stop_threshold
        self.beta = beta
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.avg_loss = 0.0
        self.best_loss = 0.0

    @staticmethod
    def _steps_now(trainer: Any, batch_idx: int) -> bool:
        return (batch_idx + 1) % int(getattr(trainer, "accumulate_grad_batches", 1) or 1) == 0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._steps_now(trainer, batch_idx):
            self.lrs.append(float(trainer.optimizers[0].param_groups[0]["lr"]))

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._steps_now(trainer, batch_idx):
            return
        loss = outputs if isinstance(outputs, torch.Tensor) else (outputs or {}).get("loss")
        if loss is None:
            # keep lrs and losses aligned; NaN is dropped when the suggestion is computed
            self.losses.append(float("nan"))
            return
        current = float(loss.item())
        step = trainer.global_step
        self.avg_loss = self.beta * self.avg_loss + (1 - self.beta) * current
        smoothed = self.avg_loss / (1 - self.beta ** (step + 1))
        if (
            self.early_stop_threshold is not None
            and step > 1
            and smoothed > self.early_stop_threshold * self.best_loss
        ):
            trainer.should_stop = True
        if smoothed < self.best_loss or step == 1:
            self.best_loss = smoothed
        self.losses.append(smoothed)


def determine_lr_attr_name(model: Any, attr_name: str = "", datamodule: Any = None) -> str:
    """The attribute holding the learning rate: ``attr_name`` if given, else ``lr`` or ``learning_rate``."""
    if attr_name:
        if not lightning_hasattr(model, attr_name, datamodule):
            raise TunerAttributeError(
                f"The attribute name for the learning rate was set to {attr_name!r}, but could not find this "
                "as a field in `model` or `model.hparams`."
            )
        return attr_name
    for name in ("lr", "learning_rate"):
        if lightning_hasattr(model, name, datamodule):
            return name
    raise TunerAttributeError(
        "When using the learning rate finder either `model` or `model.hparams` should have one of these "
        "fields: ('lr', 'learning_rate'). If your model has a different name for the learning rate, set "
        "it with `.lr_find(attr_name=...)`; or pass `update_attr=False`."
    )
