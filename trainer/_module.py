"""``LightningModule``: an ``nn.Module`` with PL 2.x's hooks, ``self.log`` and optimizer helpers."""

from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from . import _barebones
from ._errors import MisconfigurationException
from ._hparams import HyperparametersMixin
from ._logging import is_metric_collection, is_torchmetric
from ._module_hooks import ModuleHooks
from ._rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from ._optim import LightningOptimizer
    from ._trainer import Trainer


_tracing = [False]
"""True while torch.jit traces or scripts a module (it reads every attribute, ``trainer`` too)."""


@contextmanager
def jit_tracing() -> Generator[None, None, None]:
    """While torch.jit traces a module outside a run (``log_graph``, ``to_torchscript``)."""
    previous, _tracing[0] = _tracing[0], True
    try:
        yield
    finally:
        _tracing[0] = previous


class LightningModule(HyperparametersMixin, ModuleHooks, nn.Module):
    """Organise a model's training, evaluation and optimizers; ``Trainer.fit`` runs it."""

    CHECKPOINT_HYPER_PARAMS_KEY = "hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "hparams_type"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer: Trainer | None = None
        self._current_fx_name: str | None = None
        self._automatic_optimization = True
        self._example_input_array: Any = None
        self._strict_loading: bool | None = None
        self._param_requires_grad_state: dict[Tensor, bool] = {}
        self._device = torch.device("cpu")
        self._dtype: torch.dtype = torch.get_default_dtype()
        self.prepare_data_per_node = True

    # -- attachment and placement -------------------------------------------------------------
    @property
    def trainer(self) -> "Trainer":
        if self._trainer is None and not _tracing[0]:
            raise RuntimeError(f"{type(self).__qualname__} is not attached to a `Trainer`.")
        return self._trainer  # type: ignore[return-value]  # None only while torch.jit looks at the module

    @trainer.setter
    def trainer(self, trainer: "Trainer | None") -> None:
        for child in self.modules():
            if isinstance(child, LightningModule):
                child._trainer = trainer

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "LightningModule":
        out = super()._apply(fn, *args, **kwargs)
        # cached because `self.device` is read in hot code (every step of many training_steps)
        for tensor in self._tensors():
            self._device, self._dtype = tensor.device, tensor.dtype
            break
        return out

    def _tensors(self) -> Generator[Tensor, None, None]:
        yield from self.parameters()
        yield from self.buffers()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def automatic_optimization(self) -> bool:
        return self._automatic_optimization

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        self._automatic_optimization = value

    @property
    def example_input_array(self) -> Any:
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, value: Any) -> None:
        self._example_input_array = value

    @property
    def strict_loading(self) -> bool:
        return True if self._strict_loading is None else self._strict_loading

    @strict_loading.setter
    def strict_loading(self, value: bool) -> None:
        self._strict_loading = value

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer is not None else 0

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer is not None else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer is not None else 0

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def logger(self) -> Any:
        return self._trainer.logger if self._trainer is not None else None

    @property
    def loggers(self) -> list[Any]:
        return self._trainer.loggers if self._trainer is not None else []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_trainer"] = None  # a spawned process builds its own Trainer around the module
        return state

    # -- logging -------------------------------------------------------------------------------
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record ``value`` under ``name``; PL 2.x's defaults for ``on_step``/``on_epoch`` per hook."""
        trainer = self._trainer
        if trainer is None:
            # a step called by hand (a unit test of the model): nothing to log to
            rank_zero_warn(
                "You are trying to `self.log()` but the `self.trainer` reference is not registered on the model "
                "yet. This is most likely because the model hasn't been passed to the `Trainer`"
            )
            return
        if trainer.barebones:
            rank_zero_warn(_barebones.LOG_WARNING)
            return
        results = trainer._results
        if results is None:
            raise MisconfigurationException(
                "You are trying to `self.log()` but the loop's result collection is not registered yet. This is "
                "most likely because you are trying to log in a `predict` hook, but it doesn't support logging"
            )
        if metric_attribute is None and not isinstance(value, (Tensor, int, float)) and is_torchmetric(value):
            self._find_metric_attribute(name, value)
        results.log(
            trainer,
            self._current_fx_name,
            name,
            value,
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync_dist,
            add_dataloader_idx,
            batch_size,
            rank_zero_only,
        )

    def _find_metric_attribute(self, name: str, metric: Any) -> str:
        """The attribute a logged ``torchmetrics.Metric`` is (PL requires it to be one of the module's)."""
        found = {id(m): n for n, m in self.named_modules() if is_torchmetric(m)}
        if not found:
            raise MisconfigurationException(
                "Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged. You can fix "
                "this by setting an attribute for the metric in your `LightningModule`."
            )
        attribute = found.get(id(metric))
        if attribute is None:
            raise MisconfigurationException(
                "Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged. You can fix "
                f"this by calling `self.log({name}, ..., metric_attribute=name)` where `name` is one of "
                f"{list(found.values())}"
            )
        return attribute

    def log_dict(
        self,
        dictionary: Mapping[str, Any],
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        if is_metric_collection(dictionary):
            # its metrics under their prefixed names; with compute groups, without copying shared states
            collection: Any = dictionary
            items = collection.items(keep_base=False, copy_state=not collection._enable_compute_groups)
        else:
            if any(isinstance(v, Mapping) for v in dictionary.values()):
                raise ValueError(
                    f"`self.log_dict({dictionary})` was called, but nested dictionaries cannot be logged"
                )
            items = dictionary.items()
        for name, value in items:
            self.log(
                name,
                value,
                prog_bar=prog_bar,
                logger=logger,
                on_step=on_step,
                on_epoch=on_epoch,
                reduce_fx=reduce_fx,
                enable_graph=enable_graph,
                sync_dist=sync_dist,
                add_dataloader_idx=add_dataloader_idx,
                batch_size=batch_size,
                rank_zero_only=rank_zero_only,
            )

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._trainer is None or self._trainer.is_global_zero:
            print(*args, **kwargs)

    # -- optimization helpers ------------------------------------------------------------------
    def optimizers(self, use_pl_optimizer: bool = True) -> Any:
        trainer = self.trainer
        opts: Sequence[Any] = trainer._lightning_optimizers if use_pl_optimizer else trainer.optimizers
        return opts[0] if len(opts) == 1 else list(opts)

    def lr_schedulers(self) -> Any:
        configs = self.trainer.lr_scheduler_configs
        if not configs:
            return None
        schedulers = [c.scheduler for c in configs]
        return schedulers[0] if len(schedulers) == 1 else schedulers

    def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        if self.automatic_optimization:
            raise MisconfigurationException(
                "manual_backward is for manual optimization: set `self.automatic_optimization = False` in "
                "__init__, or return the loss from training_step and let the Trainer call backward"
            )
        self.trainer._backward(loss, None, *args, **kwargs)

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        loss.backward(*args, **kwargs)

    def toggle_optimizer(self, optimizer: "Optimizer | LightningOptimizer") -> None:
        """Freeze every parameter that ``optimizer`` does not own (restore with ``untoggle_optimizer``)."""
        state: dict[Tensor, bool] = {}
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for param in group["params"]:
                    if param not in state:
                        state[param] = param.requires_grad
                        param.requires_grad = False
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.requires_grad = state[param]
        self._param_requires_grad_state = state

    def untoggle_optimizer(self, optimizer: "Optimizer | LightningOptimizer") -> None:
        for param, requires_grad in self._param_requires_grad_state.items():
            param.requires_grad = requires_grad
        self._param_requires_grad_state = {}

    @contextmanager
    def toggled_optimizer(self, optimizer: "Optimizer | LightningOptimizer") -> Generator[None, None, None]:
        self.toggle_optimizer(optimizer)
        try:
            yield
        finally:
            self.untoggle_optimizer(optimizer)

    def clip_gradients(
        self,
        optimizer: "Optimizer | LightningOptimizer",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if gradient_clip_val is None:
            return
        if not isinstance(gradient_clip_val, (int, float)):
            raise TypeError(f"`gradient_clip_val` should be an int or a float. Got {gradient_clip_val}.")
        algorithm = (gradient_clip_algorithm or "norm").lower()
        if algorithm not in ("norm", "value"):
            raise MisconfigurationException(
                f"`gradient_clip_algorithm` {gradient_clip_algorithm} is invalid. Allowed algorithms: ['value', 'norm']."
            )
        self.trainer.precision_plugin.clip_gradients(optimizer, float(gradient_clip_val), algorithm)

    def configure_gradient_clipping(
        self,
        optimizer: "Optimizer | LightningOptimizer",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: "Optimizer | LightningOptimizer",
        optimizer_closure: Any = None,
    ) -> None:
        optimizer.step(closure=optimizer_closure)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Optimizer) -> None:
        optimizer.zero_grad()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    def all_gather(self, data: Any, group: Any = None, sync_grads: bool = False) -> Any:
        strategy = self.trainer.strategy
        if isinstance(data, Tensor):
            return strategy.all_gather(data, sync_grads=sync_grads)
        if isinstance(data, Mapping):
            return {k: self.all_gather(v, group, sync_grads) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self.all_gather(v, group, sync_grads) for v in data)
        return strategy.all_gather(torch.as_tensor(data, device=self.device), sync_grads=sync_grads)

    def freeze(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        self.eval()

    def unfreeze(self) -> None:
        for param in self.parameters():
            param.requires_grad = True
        self.train()

    # -- checkpoints ---------------------------------------------------------------------------
    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str,
        map_location: Any = None,
        hparams_file: str | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Build the module from the checkpoint's hyperparameters (and ``kwargs``) and load its weights.

        ``weights_only`` is ``torch.load``'s (None: torch's default, True since torch 2.6).
        """
        from ._restore import load_module_from_checkpoint

        return load_module_from_checkpoint(
            cls, checkpoint_path, map_location, hparams_file, strict, storage_options, kwargs, weights_only
        )
