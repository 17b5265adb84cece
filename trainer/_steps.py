"""What one step does inside the loops: hook dispatch, the training step, zero_grad, backward,
the optimizer step, batch transfer. A mixin of ``Trainer`` so the loops call ``trainer._backward``
and friends, as PL's loops call its strategy and precision plugins."""

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import Tensor

from . import _rank_zero
from ._deprecated import deprecate, legacy_log_items
from ._errors import MisconfigurationException
from ._hooks import is_monitoring

if TYPE_CHECKING:
    from torch.optim import Optimizer

    from ._fit_loop import FitLoop
    from ._hooks import HookTable
    from ._optim import LightningOptimizer
    from ._precision import Precision
    from ._strategy import Strategy

# ``module.__dict__["_current_fx_name"] = ...`` below, not ``module._current_fx_name = ...``:
# nn.Module.__setattr__ costs about 2 us, and the hook name is set several times per step.
_STEP_RESULT = (
    "In automatic optimization, `training_step` must return a Tensor (the loss), a dict with a 'loss' key, or "
    "None (to skip the step)"
)


class StepsMixin:
    """Assumes the attributes ``Trainer.__init__`` sets (declared here for the type checker)."""

    if TYPE_CHECKING:
        _hooks: HookTable
        _module: Any
        _profiling: bool
        profiler: Any
        precision_plugin: Precision
        strategy: Strategy
        fit_loop: FitLoop
        _step_takes_idx: bool
        _plain_precision: bool
        _train_step_fn: Any
        _need_step_output: bool
        _automatic_optimization: bool
        _convert_input: bool
        _skip_transfer: bool
        _batch_hook_owner: dict[str, Any]
        _lightning_optimizers: list[LightningOptimizer]
        gradient_clip_val: float | None
        gradient_clip_algorithm: str | None
        _max_time: float | None
        _start_time: float
        should_stop: bool
        _warned: set[str]
        _data: Any

    # -- hook dispatch ---------------------------------------------------------------------------
    def _call(self, name: str, *args: Any) -> Any:
        """Callbacks' ``name`` then the module's, each only if overridden."""
        hooks = self._hooks
        callbacks = hooks.callback_hooks(name)
        module_fn = hooks.module_hook(name)
        if not callbacks and module_fn is None:
            return None
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        try:
            if self._profiling:
                for fn in callbacks:
                    with self.profiler.profile(f"[Callback]{_owner_name(fn)}.{name}"):
                        fn(self, module, *args)
                if module_fn is not None:
                    with self.profiler.profile(f"[LightningModule]{type(module).__name__}.{name}"):
                        return module_fn(*args)
                return None
            for fn in callbacks:
                fn(self, module, *args)
            return module_fn(*args) if module_fn is not None else None
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _call_callbacks(self, name: str, *args: Any, monitoring: bool | None = None) -> None:
        callbacks = self._hooks.callback_hooks(name)
        if not callbacks:
            return
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        try:
            for fn in callbacks:
                if monitoring is None or is_monitoring(getattr(fn, "__self__", None)) == monitoring:
                    with self.profiler.profile(f"[Callback]{_owner_name(fn)}.{name}"):
                        fn(self, module, *args)
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _call_module_hook(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The module's ``name``, overridden or not (its default does the work)."""
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        try:
            with self.profiler.profile(f"[LightningModule]{type(module).__name__}.{name}"):
                return getattr(module, name)(*args, **kwargs)
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _call_callback_method(self, callback: Any, name: str, *args: Any) -> Any:
        """A callback's ``name`` called by the Trainer outside the hook table (checkpoint hooks, state)."""
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        try:
            with self.profiler.profile(
                f"[Callback]{getattr(callback, 'state_key', type(callback).__name__)}.{name}"
            ):
                return getattr(callback, name)(*args)
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _call_datamodule_hook(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The datamodule's ``name`` (profiled as PL names it)."""
        datamodule = self._data.datamodule
        with self.profiler.profile(f"[LightningDataModule]{type(datamodule).__name__}.{name}"):
            return getattr(datamodule, name)(*args, **kwargs)

    # -- training step ---------------------------------------------------------------------------
    def _training_step(self, batch: Any, batch_idx: int, k: int) -> tuple[Tensor | None, Any]:
        module = self._module
        module.__dict__["_current_fx_name"] = "training_step"
        args = (batch, batch_idx) if self._step_takes_idx else (batch,)
        if self._plain_precision:
            out = self._train_step_fn(*args)
        else:
            with self.precision_plugin.forward_context():
                out = self._train_step_fn(*args)
        extra: dict[str, Any] | None = None
        if isinstance(out, Tensor):
            loss: Tensor | None = out
        elif isinstance(out, dict):
            if "log" in out or "progress_bar" in out:
                self._log_legacy_dict("training_step", out)
                out = {k_: v for k_, v in out.items() if k_ not in ("log", "progress_bar")}
            loss = out.get("loss")
            if loss is None:
                raise MisconfigurationException(
                    "In automatic_optimization, when `training_step` returns a dict, the 'loss' key needs to be "
                    f"present (the dict had {sorted(out)})"
                )
            extra = {k_: v for k_, v in out.items() if k_ != "loss"}
        elif out is None:
            self._warn_once(
                "`training_step` returned `None`. If this was on purpose, ignore this warning: the optimizer step "
                "was skipped for that batch"
            )
            return None, {}
        else:
            raise MisconfigurationException(
                f"{_STEP_RESULT}; it returned a {type(out).__name__}: {out!r:.100}"
            )
        if not isinstance(loss, Tensor) or not loss.requires_grad or loss.numel() != 1:
            raise _bad_loss(loss)
        if k > 1:
            loss = loss / k
        if not self._need_step_output:
            return loss, None
        output = {"loss": loss.detach()}
        if extra:
            output.update(extra)
        return loss, output

    def _training_step_manual(self, batch: Any, batch_idx: int) -> Any:
        module = self._module
        module.__dict__["_current_fx_name"] = "training_step"
        args = (batch, batch_idx) if self._step_takes_idx else (batch,)
        with self.precision_plugin.forward_context():
            out = self._train_step_fn(*args)
        if isinstance(out, dict):
            if "log" in out or "progress_bar" in out:
                self._log_legacy_dict("training_step", out)
            out = {k: v for k, v in out.items() if k not in ("log", "progress_bar")}
            if isinstance(out.get("loss"), Tensor):
                out["loss"] = out["loss"].detach()
            return out
        if isinstance(out, Tensor):
            return {"loss": out.detach()}
        if out is None:
            return {}
        raise MisconfigurationException(
            f"In manual optimization, `training_step` must either return a Tensor or have no return; it returned a "
            f"{type(out).__name__}"
        )

    def _zero_grad(self, optimizer: "Optimizer", batch_idx: int) -> None:
        if self._hooks.overridden("on_before_zero_grad"):
            self._call("on_before_zero_grad", optimizer)
        if self._hooks.module_hook("optimizer_zero_grad") is not None:
            self._call_module_hook("optimizer_zero_grad", self.fit_loop.epoch_completed, batch_idx, optimizer)
        else:
            optimizer.zero_grad()

    def _backward(self, loss: Tensor, optimizer: "Optimizer | None", *args: Any, **kwargs: Any) -> None:
        loss = self.precision_plugin.scale_loss(loss)
        hooks = self._hooks
        if hooks.overridden("on_before_backward"):
            self._call("on_before_backward", loss)
        if hooks.module_hook("backward") is not None:
            self._call_module_hook("backward", loss, *args, **kwargs)
        else:
            loss.backward(*args, **kwargs)
        if hooks.overridden("on_after_backward"):
            self._call("on_after_backward")

    def _after_closure(self, optimizer: "Optimizer") -> None:
        hooks = self._hooks
        if hooks.overridden("on_before_optimizer_step"):
            self._call("on_before_optimizer_step", optimizer)
        if not self._automatic_optimization:
            return
        if hooks.module_hook("configure_gradient_clipping") is not None:
            self._call_module_hook(
                "configure_gradient_clipping",
                optimizer,
                gradient_clip_val=self.gradient_clip_val,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
            )
        elif self.gradient_clip_val:
            self._module.clip_gradients(optimizer, self.gradient_clip_val, self.gradient_clip_algorithm)

    def _step_optimizer(self, optimizer: "Optimizer", batch_idx: int, closure: Callable[[], Any]) -> None:
        if self._hooks.module_hook("optimizer_step") is not None:
            self._call_module_hook(
                "optimizer_step",
                self.fit_loop.epoch_completed,
                batch_idx,
                self._lightning_optimizers[0],
                closure,
            )
        else:
            self._optimizer_step(optimizer, closure)

    def _optimizer_step(self, optimizer: "Optimizer", closure: Callable[[], Any], **kwargs: Any) -> Any:
        return self.precision_plugin.optimizer_step(
            optimizer, closure, self._after_closure, self._automatic_optimization, **kwargs
        )

    # -- batches ---------------------------------------------------------------------------------
    def _transfer_batch(self, batch: Any, dataloader_idx: int) -> Any:
        if self._convert_input:
            batch = self.precision_plugin.convert_input(batch)
        if self._skip_transfer:
            return batch
        owner = self._batch_hook_owner
        module = self._module
        previous = module._current_fx_name
        try:  # each under its own name, as PL runs them (self.log says it cannot log there)
            module.__dict__["_current_fx_name"] = "on_before_batch_transfer"
            batch = owner["on_before_batch_transfer"](batch, dataloader_idx)
            module.__dict__["_current_fx_name"] = "transfer_batch_to_device"
            batch = owner["transfer_batch_to_device"](batch, self.strategy.root_device, dataloader_idx)
            module.__dict__["_current_fx_name"] = "on_after_batch_transfer"
            return owner["on_after_batch_transfer"](batch, dataloader_idx)
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _run_step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        try:
            with self.precision_plugin.forward_context():
                return fn(*args)
        finally:
            module.__dict__["_current_fx_name"] = previous

    # -- the seed's spellings --------------------------------------------------------------------
    def _log_legacy_dict(self, hook: str, output: dict[str, Any], top_level: bool = False) -> None:
        module = self._module
        previous = module._current_fx_name
        module.__dict__["_current_fx_name"] = hook
        try:
            for name, value, prog_bar, logger in legacy_log_items(hook, output):
                module.log(name, value, prog_bar=prog_bar, logger=logger)
            if top_level:
                logged = set(dict(output.get("log") or {})) | set(dict(output.get("progress_bar") or {}))
                for name, value in output.items():
                    if (
                        name not in ("log", "progress_bar")
                        and name not in logged
                        and isinstance(value, Tensor)
                    ):
                        module.log(name, value, logger=False)
        finally:
            module.__dict__["_current_fx_name"] = previous

    def _call_legacy_epoch_end(self, name: str, outputs: Any) -> None:
        deprecate(f"LightningModule.{name}(outputs)", f"on_{name.removesuffix('_end')}_end() and self.log")
        out = self._call_module_hook(name, outputs)
        if isinstance(out, dict):
            self._log_legacy_dict(name, out, top_level=True)

    # -- misc ------------------------------------------------------------------------------------
    def _check_time(self) -> None:
        if self._max_time is not None and time.monotonic() - self._start_time >= self._max_time:
            if not self.should_stop:
                self._info_once(f"Time limit reached ({self._max_time:.0f} s). Signaling Trainer to stop.")
            self.should_stop = True

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, UserWarning, stacklevel=3)

    def _info_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            if self.strategy.is_global_zero:
                _rank_zero.log.info(message)


def _owner_name(fn: Any) -> str:
    return type(getattr(fn, "__self__", fn)).__qualname__


def _bad_loss(loss: Any) -> MisconfigurationException:
    if not isinstance(loss, Tensor):
        return MisconfigurationException(
            f"{_STEP_RESULT}; its 'loss' is a {type(loss).__name__}, not a Tensor"
        )
    if loss.numel() != 1:
        return MisconfigurationException(
            f"training_step returned a loss of shape {tuple(loss.shape)}; reduce it to one number, e.g. loss.mean()"
        )
    return MisconfigurationException(
        "training_step returned a loss that does not require grad, so nothing can be learned from it: compute "
        "it from the model's output without .detach(), .item() or torch.no_grad(), and check that some "
        "parameters have requires_grad=True"
    )
