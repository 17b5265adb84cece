"""A BoringModel whose logged metric follows a script, so tests know which epoch is best."""

from __future__ import annotations

from typing import Any

import torch
from helpers import BoringModel


class ScriptedModel(BoringModel):
    """Logs ``key`` = ``values[current_epoch]`` at the end of each validation epoch (or of each
    training epoch with ``on_train=True``)."""

    def __init__(
        self, values: list[float], key: str = "val_score", on_train: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.values = values
        self.key = key
        self.on_train = on_train

    def _log_scripted(self) -> None:
        self.log(self.key, torch.tensor(self.values[self.current_epoch]))

    def on_validation_epoch_end(self) -> None:
        if not self.on_train and not self.trainer.sanity_checking:
            self._log_scripted()

    def on_train_epoch_end(self) -> None:
        if self.on_train:
            self._log_scripted()
