"""``Trainer(barebones=True)``: every feature that costs speed off, and an error for asking for one.

For measuring the Trainer's own overhead, as in PyTorch Lightning: the errors and the info line use
PL's wording.
"""

import os
from typing import Any

from ._rank_zero import rank_zero_info

# argument -> (its barebones value, whether a given value conflicts, what it costs)
_OPT_OUTS: dict[str, tuple[Any, Any, str]] = {
    "enable_checkpointing": (False, lambda v: bool(v), "Checkpointing can impact raw speed"),
    "logger": (False, lambda v: v is not None and v is not False, "Logging can impact raw speed"),
    "enable_progress_bar": (False, lambda v: bool(v), "The progress bar can impact raw speed"),
    "log_every_n_steps": (0, lambda v: v is not None and v != 0, "Logging can impact raw speed"),
    "enable_model_summary": (False, lambda v: bool(v), "Model summary can impact raw speed"),
    "num_sanity_val_steps": (0, lambda v: v is not None and v != 0, "Sanity checking can impact raw speed"),
}
_OPT_INS: dict[str, tuple[Any, str]] = {
    "fast_dev_run": (
        lambda v: v is not False and v != 0,
        "Development run is not meant for raw speed evaluation",
    ),
    "detect_anomaly": (lambda v: bool(v), "Anomaly detection can impact raw speed"),
    "profiler": (lambda v: v is not None, "Profiling can impact raw speed"),
}
_DEACTIVATED = (
    " - Checkpointing: `Trainer(enable_checkpointing=True)`",
    " - Progress bar: `Trainer(enable_progress_bar=True)`",
    " - Model summary: `Trainer(enable_model_summary=True)`",
    " - Logging: `Trainer(logger=True)`, `Trainer(log_every_n_steps>0)`, `LightningModule.log(...)`, "
    "`LightningModule.log_dict(...)`",
    " - Sanity checking: `Trainer(num_sanity_val_steps>0)`",
    " - Development run: `Trainer(fast_dev_run=True)`",
    " - Anomaly detection: `Trainer(detect_anomaly=True)`",
    " - Profiling: `Trainer(profiler=...)`",
)


def apply(args: dict[str, Any]) -> None:
    """Turn ``args`` (the Trainer's) into barebones ones; ValueError for one that asks for a feature."""
    for name, (off, conflicts, cost) in _OPT_OUTS.items():
        if conflicts(args[name]):
            raise ValueError(
                f"`Trainer(barebones=True, {name}={args[name]!r})` was passed. {cost} so it is disabled in "
                "barebones mode."
            )
        args[name] = off
    for name, (conflicts, cost) in _OPT_INS.items():
        if conflicts(args[name]):
            raise ValueError(
                f"`Trainer(barebones=True, {name}={args[name]!r})` was passed. {cost} so it is disabled in "
                "barebones mode."
            )
    rank_zero_info(
        "You are running in `Trainer(barebones=True)` mode. All features that may impact raw speed have been "
        "disabled to facilitate analyzing the Trainer overhead. Specifically, the following features are "
        f"deactivated:{os.linesep}{os.linesep.join(_DEACTIVATED)}"
    )


LOG_WARNING = (
    "You are trying to `self.log()` but `Trainer(barebones=True)` is configured. Logging can impact raw speed so "
    "it is disabled under this setting."
)
STARTED = (
    "`Trainer(barebones=True)` started running. The progress bar is disabled so you might want to manually print "
    "the progress in your model."
)
