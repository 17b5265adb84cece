"""Precision: full, true half/double, and mixed (autocast, with a GradScaler for float16)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Generator
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._data import convert_floats
from ._errors import MisconfigurationException

_ALIASES: dict[Any, str] = {
    64: "64-true",
    "64": "64-true",
    "64-true": "64-true",
    32: "32-true",
    "32": "32-true",
    "32-true": "32-true",
    16: "16-mixed",
    "16": "16-mixed",
    "16-mixed": "16-mixed",
    "16-true": "16-true",
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
    "bf16-true": "bf16-true",
}
_TRUE_DTYPES = {"64-true": torch.float64, "16-true": torch.float16, "bf16-true": torch.bfloat16}


def parse_precision(value: Any) -> str:
    precision = _ALIASES.get(value)
    if precision is None:
        raise MisconfigurationException(
            f"precision={value!r} is not supported; use one of '32-true', '16-mixed', 'bf16-mixed', "
            "'16-true', 'bf16-true', '64-true' (or the short forms 32, 16, 'bf16', 64)"
        )
    if value in (16, "16"):
        warnings.warn(
            f"precision={value!r} is supported for historical reasons but its usage is discouraged. Please set "
            "your precision to '16-mixed' instead!",
            UserWarning,
            stacklevel=3,
        )
    if value == "bf16":
        warnings.warn(
            "precision='bf16' is supported for historical reasons but its usage is discouraged. Please set your "
            "precision to 'bf16-mixed' instead!",
            UserWarning,
            stacklevel=3,
        )
    return precision


class Precision:
    """32-bit: nothing to convert, scale or cast."""

    name = "32-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def convert_input(self, batch: Any) -> Any:
        return batch

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def scale_loss(self, loss: Tensor) -> Tensor:
        return loss

    def optimizer_step(
        self,
        optimizer: Optimizer,
        closure: Callable[[], Any],
        after_closure: Callable[[Optimizer], None],
        automatic: bool,
        **kwargs: Any,
    ) -> Any:
        def wrapped() -> Any:
            result = closure()
            after_closure(optimizer)
            return result

        return optimizer.step(closure=wrapped, **kwargs)

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        pass

    def clip_gradients(self, optimizer: Any, clip_val: float, algorithm: str) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip_val)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class TruePrecision(Precision):
    """Parameters and floating inputs in one dtype (``16-true``, ``bf16-true``, ``64-true``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _TRUE_DTYPES[name]

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(dtype=self.dtype)

    def convert_input(self, batch: Any) -> Any:
        return convert_floats(batch, self.dtype)

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return _default_dtype(self.dtype)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Generator[None, None, None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class MixedPrecision(Precision):
    """``torch.autocast`` around the steps; float16 losses are scaled by a ``GradScaler``."""

    def __init__(self, name: str, device_type: str) -> None:
        self.name = name
        self.device_type = device_type
        self.dtype = torch.float16 if name == "16-mixed" else torch.bfloat16
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler(device_type) if name == "16-mixed" else None
        )

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale_loss(self, loss: Tensor) -> Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def optimizer_step(
        self,
        optimizer: Optimizer,
        closure: Callable[[], Any],
        after_closure: Callable[[Optimizer], None],
        automatic: bool,
        **kwargs: Any,
    ) -> Any:
        if self.scaler is None:
            return super().optimizer_step(optimizer, closure, after_closure, automatic, **kwargs)
        if isinstance(optimizer, torch.optim.LBFGS):
            raise MisconfigurationException(
                "precision='16-mixed' cannot step LBFGS (its closure runs many times)"
            )
        result = closure()
        # gradients are unscaled before hooks and clipping see them, as in PL
        self.scaler.unscale_(optimizer)
        after_closure(optimizer)
        if automatic and result is None:
            return None  # no backward ran: nothing to step, and the scaler has no inf checks to use
        step_output = self.scaler.step(optimizer, **kwargs)
        self.scaler.update()
        return step_output

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def make_precision(name: str, device_type: str) -> Precision:
    if name == "32-true":
        return Precision()
    if name in _TRUE_DTYPES:
        return TruePrecision(name)
    if name == "16-mixed" and device_type == "cpu":
        raise MisconfigurationException(
            "precision='16-mixed' needs a GPU: float16 autocast with gradient scaling is not supported on CPU. "
            "Use precision='bf16-mixed' on CPU, or accelerator='gpu'"
        )
    return MixedPrecision(name, device_type)
