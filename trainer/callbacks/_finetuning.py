"""``BaseFinetuning`` and ``BackboneFinetuning``: freeze parts of a model, unfreeze them on a schedule.

``BaseFinetuning`` keeps, per optimizer, the parameter groups it added (by parameter name), in its
checkpoint state: a resumed run rebuilds those groups before the optimizer's state is loaded into them,
so the optimizer state fits.
"""

import logging
from collections.abc import Callable, Generator, Iterable
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from .._errors import MisconfigurationException
from .._rank_zero import rank_zero_warn
from ._base import Callback

Trainer = Any
LightningModule = Any

log = logging.getLogger("lightning_kernel.trainer.callbacks.finetuning")


def multiplicative(epoch: int) -> float:
    return 2.0


class BaseFinetuning(Callback):
    """Override ``freeze_before_training(pl_module)`` and ``finetune_function(pl_module, epoch, optimizer)``."""

    def __init__(self) -> None:
        self._internal_optimizer_metadata: dict[int, list[dict[str, Any]]] = {}
        self._restarting = False

    def state_dict(self) -> dict[str, Any]:
        return {"internal_optimizer_metadata": self._internal_optimizer_metadata}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restarting = True
        # a checkpoint of an older layout holds the groups of the first optimizer only
        self._internal_optimizer_metadata = state_dict.get("internal_optimizer_metadata", {0: state_dict})

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._restarting:
            return
        named = dict(pl_module.named_parameters())
        for index, optimizer in enumerate(trainer.optimizers):
            groups = self._internal_optimizer_metadata.get(index)
            if groups is not None:
                optimizer.param_groups = self._groups_from_names(groups, named)
        self._restarting = False

    @staticmethod
    def _groups_from_names(
        groups: list[dict[str, Any]], named: dict[str, nn.Parameter]
    ) -> list[dict[str, Any]]:
        return [{**group, "params": [named[name] for name in group["params"]]} for group in groups]

    def _store(self, pl_module: LightningModule, index: int, optimizer: Optimizer) -> None:
        names = {id(p): name for name, p in pl_module.named_parameters()}
        self._internal_optimizer_metadata[index] = [
            {**group, "params": [names.get(id(p), "") for p in group["params"]]}
            for group in optimizer.param_groups
        ]

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for index, optimizer in enumerate(trainer.optimizers):
            self.finetune_function(pl_module, trainer.current_epoch, optimizer)
            self._store(pl_module, index, optimizer)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.freeze_before_training(pl_module)

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: Optimizer) -> None:
        """Override: unfreeze what this epoch trains, e.g. with :meth:`unfreeze_and_add_param_group`."""
        raise NotImplementedError

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        """Override: freeze what training starts without, e.g. ``self.freeze(pl_module.backbone)``."""
        raise NotImplementedError

    # -- helpers (PL's static methods) -----------------------------------------------------------------
    @staticmethod
    def flatten_modules(modules: nn.Module | Iterable[nn.Module | Iterable[Any]]) -> list[nn.Module]:
        """The leaf modules (and modules with parameters of their own) under ``modules``."""
        if isinstance(modules, nn.ModuleDict):
            modules = modules.values()
        found: list[nn.Module] = []
        if isinstance(modules, Iterable):
            for module in modules:
                found.extend(BaseFinetuning.flatten_modules(module))
            return found
        return [m for m in modules.modules() if not list(m.children()) or m._parameters]

    @staticmethod
    def filter_params(
        modules: nn.Module | Iterable[nn.Module | Iterable[Any]],
        train_bn: bool = True,
        requires_grad: bool = True,
    ) -> Generator[nn.Parameter, None, None]:
        """The parameters of ``modules`` whose ``requires_grad`` is ``requires_grad`` (BatchNorm ones
        only with ``train_bn``)."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm) and not train_bn:
                continue
            for param in module.parameters(recurse=False):
                if param.requires_grad == requires_grad:
                    yield param

    @staticmethod
    def make_trainable(modules: nn.Module | Iterable[nn.Module | Iterable[Any]]) -> None:
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm):
                module.track_running_stats = True
            for param in module.parameters(recurse=False):
                param.requires_grad = True

    @staticmethod
    def freeze_module(module: nn.Module) -> None:
        if isinstance(module, _BatchNorm):
            module.track_running_stats = False
        for param in module.parameters(recurse=False):
            param.requires_grad = False

    @staticmethod
    def freeze(modules: nn.Module | Iterable[nn.Module | Iterable[Any]], train_bn: bool = True) -> None:
        """Freeze every parameter of ``modules``; BatchNorm layers keep training with ``train_bn``."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm) and train_bn:
                BaseFinetuning.make_trainable(module)
            else:
                BaseFinetuning.freeze_module(module)

    @staticmethod
    def filter_on_optimizer(optimizer: Optimizer, params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
        """``params`` that are in none of ``optimizer``'s groups yet (others are skipped with a warning)."""
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        kept: list[nn.Parameter] = []
        skipped: list[nn.Parameter] = []
        for param in params:
            (skipped if id(param) in present else kept).append(param)
        if skipped:
            rank_zero_warn(
                "The provided params to be frozen already exist within another group of this optimizer. Those "
                "parameters will be skipped.\nHINT: Did you init your optimizer in `configure_optimizer` as "
                f"such:\n {type(optimizer)}(filter(lambda p: p.requires_grad, self.parameters()), ...) "
            )
        return kept

    @staticmethod
    def unfreeze_and_add_param_group(
        modules: nn.Module | Iterable[nn.Module | Iterable[Any]],
        optimizer: Optimizer,
        lr: float | None = None,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
    ) -> None:
        """Make ``modules`` trainable and add their parameters to ``optimizer`` as a new group.

        The group's learning rate is ``lr``, or the first group's divided by ``initial_denom_lr``.
        """
        BaseFinetuning.make_trainable(modules)
        base_lr = optimizer.param_groups[0]["lr"] if lr is None else float(lr)
        denominator = initial_denom_lr if lr is None else 1.0
        params = BaseFinetuning.filter_params(modules, train_bn=train_bn, requires_grad=True)
        kept = BaseFinetuning.filter_on_optimizer(optimizer, params)
        if kept:
            optimizer.add_param_group({"params": kept, "lr": base_lr / denominator})


class BackboneFinetuning(BaseFinetuning):
    """Train with ``pl_module.backbone`` frozen, unfreeze it at ``unfreeze_backbone_at_epoch``, then let
    its learning rate grow by ``lambda_func`` each epoch (never above the main group's with ``should_align``).
    """

    def __init__(
        self,
        unfreeze_backbone_at_epoch: int = 10,
        lambda_func: Callable[[int], float] = multiplicative,
        backbone_initial_ratio_lr: float = 10e-2,
        backbone_initial_lr: float | None = None,
        should_align: bool = True,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
        verbose: bool = False,
        rounding: int = 12,
    ) -> None:
        super().__init__()
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        self.lambda_func = lambda_func
        self.backbone_initial_ratio_lr = backbone_initial_ratio_lr
        self.backbone_initial_lr = backbone_initial_lr
        self.should_align = should_align
        self.initial_denom_lr = initial_denom_lr
        self.train_bn = train_bn
        self.verbose = verbose
        self.rounding = rounding
        self.previous_backbone_lr: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "internal_optimizer_metadata": self._internal_optimizer_metadata,
            "previous_backbone_lr": self.previous_backbone_lr,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous_backbone_lr = state_dict["previous_backbone_lr"]
        super().load_state_dict(state_dict)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _check_backbone(pl_module)
        super().on_fit_start(trainer, pl_module)

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        _check_backbone(pl_module)  # setup() freezes before on_fit_start could check
        self.freeze(pl_module.backbone)

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch == self.unfreeze_backbone_at_epoch:
            current_lr = optimizer.param_groups[0]["lr"]
            initial = (
                self.backbone_initial_lr
                if self.backbone_initial_lr is not None
                else current_lr * self.backbone_initial_ratio_lr
            )
            self.previous_backbone_lr = initial
            self.unfreeze_and_add_param_group(
                pl_module.backbone,
                optimizer,
                initial,
                train_bn=self.train_bn,
                initial_denom_lr=self.initial_denom_lr,
            )
            if self.verbose:
                log.info(
                    f"Current lr: {round(current_lr, self.rounding)}, "
                    f"Backbone lr: {round(initial, self.rounding)}"
                )
        elif epoch > self.unfreeze_backbone_at_epoch:
            current_lr = optimizer.param_groups[0]["lr"]
            assert self.previous_backbone_lr is not None
            next_lr = self.lambda_func(epoch + 1) * self.previous_backbone_lr
            if self.should_align and next_lr > current_lr:
                next_lr = current_lr
            optimizer.param_groups[-1]["lr"] = next_lr
            self.previous_backbone_lr = next_lr
            if self.verbose:
                log.info(
                    f"Current lr: {round(current_lr, self.rounding)}, Backbone lr: {round(next_lr, self.rounding)}"
                )


def _check_backbone(pl_module: LightningModule) -> None:
    if not isinstance(getattr(pl_module, "backbone", None), nn.Module):
        raise MisconfigurationException("The LightningModule should have a nn.Module `backbone` attribute")
