"""The seed's older spellings: still accepted, with a ``DeprecationWarning`` that says the new one.

- ``Trainer(gpus=N)``, ``num_processes=N``, ``progress_bar_refresh_rate``, ``checkpoint_callback``,
  ``weights_summary``, ``resume_from_checkpoint``: mapped to PL 2.x's arguments.
- ``training_step``/``validation_step`` returning ``{'loss': ..., 'log': {...}, 'progress_bar': {...}}``
  and ``validation_epoch_end(outputs)``: handled by the Trainer through :func:`legacy_log_items`.
- TPU/IPU/HPU arguments: a clear "not supported" error.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ._errors import MisconfigurationException

_UNSUPPORTED = ("tpu_cores", "ipus", "hpus")
_UNSUPPORTED_ACCELERATORS = ("tpu", "ipu", "hpu", "xla")


def deprecate(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will stop working in a future version; use {new}",
        DeprecationWarning,
        stacklevel=4,
    )


def check_accelerator(accelerator: Any) -> None:
    if isinstance(accelerator, str) and accelerator.lower() in _UNSUPPORTED_ACCELERATORS:
        raise MisconfigurationException(
            f"accelerator={accelerator!r} is not supported by lightning_kernel.trainer (CPU and CUDA GPUs only); "
            "use accelerator='cpu', 'gpu' or 'auto'"
        )


def translate_trainer_kwargs(kwargs: dict[str, Any], args: dict[str, Any]) -> None:
    """Apply old ``Trainer(...)`` keywords to ``args`` (the new ones), raising for unknown names."""
    for name in _UNSUPPORTED:
        if name in kwargs:
            raise MisconfigurationException(
                f"Trainer({name}={kwargs[name]!r}): TPUs, IPUs and HPUs are not supported by lightning_kernel.trainer; "
                "remove the argument and use accelerator='cpu' or accelerator='gpu' with devices=N"
            )
    if "gpus" in kwargs:
        gpus = kwargs.pop("gpus")
        deprecate(f"Trainer(gpus={gpus!r})", f"Trainer(accelerator='gpu', devices={gpus!r})")
        if gpus not in (None, 0, [], "0", ""):
            args["accelerator"] = "gpu"
            args["devices"] = gpus
    if "num_processes" in kwargs:
        n = kwargs.pop("num_processes")
        deprecate(f"Trainer(num_processes={n!r})", f"Trainer(accelerator='cpu', devices={n!r})")
        args["accelerator"] = "cpu"
        args["devices"] = n
    if "progress_bar_refresh_rate" in kwargs:
        rate = kwargs.pop("progress_bar_refresh_rate")
        deprecate(
            "Trainer(progress_bar_refresh_rate=...)",
            "Trainer(callbacks=[TQDMProgressBar(refresh_rate=...)]) or enable_progress_bar=False",
        )
        if rate == 0:
            args["enable_progress_bar"] = False
    if "checkpoint_callback" in kwargs:
        value = kwargs.pop("checkpoint_callback")
        deprecate("Trainer(checkpoint_callback=...)", "Trainer(enable_checkpointing=...)")
        args["enable_checkpointing"] = bool(value)
    if "weights_summary" in kwargs:
        value = kwargs.pop("weights_summary")
        deprecate("Trainer(weights_summary=...)", "Trainer(enable_model_summary=...)")
        args["enable_model_summary"] = value is not None
    if "resume_from_checkpoint" in kwargs:
        path = kwargs.pop("resume_from_checkpoint")
        deprecate("Trainer(resume_from_checkpoint=...)", "trainer.fit(model, ckpt_path=...)")
        args["_resume_from_checkpoint"] = path
    if kwargs:
        raise TypeError(f"Trainer.__init__() got unexpected keyword argument(s) {sorted(kwargs)}")


def rename_kwarg(kwargs: dict[str, Any], old: str, new: str, value: Any, method: str) -> Any:
    """``trainer.test(test_dataloaders=...)`` and friends: the old keyword of a Trainer method."""
    if old in kwargs:
        deprecate(f"trainer.{method}({old}=...)", f"trainer.{method}({new}=...)")
        if value is not None:
            raise MisconfigurationException(
                f"trainer.{method}() got both {old}= and {new}=; pass only {new}="
            )
        value = kwargs.pop(old)
    if kwargs:
        raise TypeError(f"Trainer.{method}() got unexpected keyword argument(s) {sorted(kwargs)}")
    return value


def legacy_log_items(hook: str, output: Mapping[str, Any]) -> list[tuple[str, Any, bool, bool | None]]:
    """``(name, value, prog_bar, logger)`` for the ``'log'``/``'progress_bar'`` entries of a returned dict
    (``logger=None``: the default, so a Trainer without a logger does not warn about it)."""
    deprecate(
        f"returning {{'log': ..., 'progress_bar': ...}} from {hook}", "self.log(name, value, prog_bar=...)"
    )
    items: dict[str, list[Any]] = {}
    for name, value in dict(output.get("log") or {}).items():
        items[name] = [value, False, None]
    for name, value in dict(output.get("progress_bar") or {}).items():
        entry = items.setdefault(name, [value, False, False])
        entry[1] = True
    return [(name, v, prog_bar, logger) for name, (v, prog_bar, logger) in items.items()]
