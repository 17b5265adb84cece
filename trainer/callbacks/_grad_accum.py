"""``GradientAccumulationScheduler``: change ``accumulate_grad_batches`` as epochs go by."""

from typing import Any

from .._errors import MisconfigurationException
from ._base import Callback

Trainer = Any
LightningModule = Any


class GradientAccumulationScheduler(Callback):
    """``scheduling={0: 8, 4: 4, 8: 1}``: from epoch 0 accumulate 8 batches, from epoch 4 four, ...

    Epochs count from 0; before the first key, 1 batch (no accumulation).
    """

    def __init__(self, scheduling: dict[int, int]) -> None:
        super().__init__()
        if not scheduling:  # empty dict error
            raise TypeError("Empty dict cannot be interpreted correct")
        if any(not isinstance(key, int) or key < 0 for key in scheduling):
            raise MisconfigurationException(
                f"Epoch should be an int greater than or equal to 0. Got {list(scheduling.keys())}."
            )
        if any(not isinstance(value, int) or value < 1 for value in scheduling.values()):
            raise MisconfigurationException(
                f"Accumulation factor should be an int greater than 0. Got {list(scheduling.values())}."
            )
        minimal_epoch = min(scheduling.keys())
        if minimal_epoch < 0:
            raise IndexError(f"Epochs indexing from 1, epoch {minimal_epoch} cannot be interpreted correct")
        if minimal_epoch != 0:  # if user didn't define first epoch accumulation factor
            scheduling = {0: 1, **scheduling}
        self.scheduling = dict(sorted(scheduling.items()))
        self.epochs = sorted(self.scheduling.keys())

    def going_to_accumulate_grad_batches(self) -> bool:
        return any(v > 1 for v in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        accumulate = 1
        for start in reversed(self.epochs):
            if epoch >= start:
                accumulate = self.scheduling[start]
                break
        return accumulate

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not pl_module.automatic_optimization:
            raise RuntimeError(
                "Automatic gradient accumulation and the `GradientAccumulationScheduler` is not supported for "
                "manual optimization. Please remove the callback or switch to automatic optimization."
            )
        overridden = trainer._init_kwargs.get("accumulate_grad_batches", 1)
        if overridden != 1:
            raise ValueError(
                "You have set `accumulate_grad_batches` and are using the `GradientAccumulationScheduler` "
                "callback. Either remove `accumulate_grad_batches` from the Trainer or remove the callback."
            )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)
