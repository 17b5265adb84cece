"""ModelCheckpoint's argument checks: every bad combination fails at construction, naming itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .._errors import MisconfigurationException


def validate_config(
    monitor: str | None,
    save_top_k: int,
    save_last: Any,
    every_n_train_steps: int,
    every_n_epochs: int,
    train_time_interval: timedelta | None,
) -> None:
    if save_top_k < -1:
        raise MisconfigurationException(f"Invalid value for save_top_k={save_top_k}. Must be >= -1")
    if every_n_train_steps < 0:
        raise MisconfigurationException(
            f"Invalid value for every_n_train_steps={every_n_train_steps}. Must be >= 0"
        )
    if every_n_epochs < 0:
        raise MisconfigurationException(f"Invalid value for every_n_epochs={every_n_epochs}. Must be >= 0")
    triggers = [
        name
        for name, on in (
            ("every_n_train_steps", every_n_train_steps >= 1),
            ("every_n_epochs", every_n_epochs >= 1),
            ("train_time_interval", train_time_interval is not None),
        )
        if on
    ]
    if len(triggers) > 1:
        raise MisconfigurationException(
            f"Combination of parameters every_n_train_steps={every_n_train_steps}, every_n_epochs={every_n_epochs} "
            f"and train_time_interval={train_time_interval} should be mutually exclusive."
        )
    if monitor is None and save_top_k not in (-1, 0, 1):
        raise MisconfigurationException(
            f"ModelCheckpoint(save_top_k={save_top_k}, monitor=None) is not a valid configuration. No quantity "
            "for top_k to track."
        )
    if save_last not in (None, True, False, "link"):
        raise MisconfigurationException(
            f"ModelCheckpoint(save_last={save_last!r}) must be True, False, None or 'link'."
        )
