"""Trainer arguments that need parsing: accelerator/devices/strategy, max_time, limits."""

from __future__ import annotations

import ast
import datetime
import functools
import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ._deprecated import check_accelerator
from ._errors import MisconfigurationException

_STRATEGIES = (
    "auto",
    "single_device",
    "ddp",
    "ddp_spawn",
    "ddp_fork",
    "ddp_notebook",
    "ddp_find_unused_parameters_true",
)


def parse_accelerator(accelerator: Any) -> str:
    check_accelerator(accelerator)
    if accelerator is None or accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(accelerator, str):
        raise MisconfigurationException(
            f"accelerator={accelerator!r}: pass 'cpu', 'gpu', 'cuda', 'mps' or 'auto'"
        )
    name = accelerator.lower()
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise MisconfigurationException(
                f"accelerator={accelerator!r} but no CUDA GPU is available (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda}); use accelerator='cpu'"
            )
        return "cuda"
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise MisconfigurationException(
                "accelerator='mps' but MPS is not available; use accelerator='cpu'"
            )
        return "mps"
    if name == "cpu":
        return "cpu"
    raise MisconfigurationException(
        f"accelerator={accelerator!r} is unknown; pass 'cpu', 'gpu', 'cuda', 'mps' or 'auto'"
    )


def parse_strategy(strategy: Any, n_devices: int, num_nodes: int) -> str:
    if not isinstance(strategy, str) or strategy not in _STRATEGIES:
        raise MisconfigurationException(
            f"strategy={strategy!r} is not supported; use one of {list(_STRATEGIES)} "
            "(DeepSpeed, FSDP and DP are not available in lightning_kernel.trainer)"
        )
    if strategy == "auto":
        return "ddp" if n_devices * num_nodes > 1 else "single_device"
    if strategy == "single_device" and n_devices * num_nodes > 1:
        raise MisconfigurationException(
            f"strategy='single_device' cannot run on {n_devices * num_nodes} devices; use 'ddp' or devices=1"
        )
    return strategy


def parse_max_time(max_time: Any) -> float | None:
    """Seconds from ``"DD:HH:MM:SS"``, a ``timedelta`` or a dict of ``timedelta`` keywords."""
    if max_time is None:
        return None
    if isinstance(max_time, datetime.timedelta):
        return max_time.total_seconds()
    if isinstance(max_time, Mapping):
        return datetime.timedelta(**max_time).total_seconds()
    if isinstance(max_time, str) and re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", max_time):
        days, hours, minutes, seconds = (int(x) for x in max_time.split(":"))
        return datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    raise MisconfigurationException(
        f"max_time={max_time!r}: pass 'DD:HH:MM:SS', a datetime.timedelta or a dict such as {{'hours': 1}}"
    )


def parse_val_check_time(value: Any) -> float | None:
    """Seconds of a time-based ``val_check_interval`` (PL 2.6), or None for a batch-based one.

    ``"DD:HH:MM:SS"``, a ``timedelta`` or a dict of ``timedelta`` keywords; ints and floats are batch counts
    and fractions, checked by ``parse_limit``.
    """
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return datetime.timedelta(**value).total_seconds()
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) != 4:
        raise MisconfigurationException(
            f"Invalid time format for `val_check_interval`: {value!r}. Expected 'DD:HH:MM:SS'."
        )
    try:
        days, hours, minutes, seconds = (int(part) for part in parts)
    except ValueError:
        raise MisconfigurationException(
            f"Non-integer component in `val_check_interval` string: {value!r}. Use 'DD:HH:MM:SS'."
        ) from None
    return datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()


def check_positive_int(value: Any, name: str, minimum: int = 0, allow: tuple[Any, ...] = ()) -> None:
    if value in allow and not isinstance(value, bool):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MisconfigurationException(f"`{name}` must be an int >= {minimum}, got {value!r}")


def defaults_from_env(init: Callable[..., None]) -> Callable[..., None]:
    """``PL_TRAINER_<ARGUMENT>`` environment variables as defaults of arguments not passed (PL's rule).

    The value is read as a Python literal (``"2"`` is 2, ``"False"`` is False), else kept as a string;
    the class's own name is the middle part, so a subclass ``MyTrainer`` reads ``PL_MYTRAINER_...``.
    """
    names = [p.name for p in inspect.signature(init).parameters.values() if p.kind is p.KEYWORD_ONLY]

    @functools.wraps(init)
    def wrapper(self: Any, **kwargs: Any) -> None:
        prefix = f"PL_{type(self).__name__.upper()}_"
        for name in names:
            if name in kwargs:
                continue
            raw = os.environ.get(prefix + name.upper())
            if raw is None or raw == "":
                continue
            try:
                kwargs[name] = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                kwargs[name] = raw
        init(self, **kwargs)

    return wrapper
