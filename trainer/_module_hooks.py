"""The hooks of a ``LightningModule`` (PL 2.x's ModelHooks, DataHooks and CheckpointHooks), as
defaults: no-ops, or the behaviour PL gives them. The Trainer calls only the ones a module overrides,
plus the few whose default does work (``configure_optimizers``, the eval/train mode switches)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._data import move_data_to_device
from ._errors import MisconfigurationException

if TYPE_CHECKING:
    from ._trainer import Trainer


class ModuleHooks:
    if TYPE_CHECKING:
        trainer: Trainer

        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
        def zero_grad(self, set_to_none: bool = True) -> None: ...

    # -- what users implement -----------------------------------------------------------------
    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        raise MisconfigurationException(
            f"{type(self).__name__} has no training_step(batch, batch_idx): define it to use Trainer.fit"
        )

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        batch = kwargs.get("batch", args[0] if args else None)
        return self(batch)

    def configure_optimizers(self) -> Any:
        raise MisconfigurationException(
            f"{type(self).__name__} has no configure_optimizers(): define it and return an optimizer, e.g. "
            "`return torch.optim.SGD(self.parameters(), lr=0.1)`"
        )

    def configure_callbacks(self) -> Sequence[Any] | Any:
        return []

    def train_dataloader(self) -> Any:
        raise MisconfigurationException(f"`train_dataloader` must be implemented in {type(self).__name__}")

    def val_dataloader(self) -> Any:
        raise MisconfigurationException(f"`val_dataloader` must be implemented in {type(self).__name__}")

    def test_dataloader(self) -> Any:
        raise MisconfigurationException(f"`test_dataloader` must be implemented in {type(self).__name__}")

    def predict_dataloader(self) -> Any:
        raise MisconfigurationException(f"`predict_dataloader` must be implemented in {type(self).__name__}")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return move_data_to_device(batch, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    # -- hooks: no-ops unless overridden ------------------------------------------------------
    def prepare_data(self) -> None: ...
    def setup(self, stage: str) -> None: ...
    def teardown(self, stage: str) -> None: ...
    def configure_model(self) -> None: ...
    def configure_sharded_model(self) -> None: ...
    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_test_start(self) -> None: ...
    def on_test_end(self) -> None: ...
    def on_predict_start(self) -> None: ...
    def on_predict_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_validation_epoch_start(self) -> None: ...
    def on_validation_epoch_end(self) -> None: ...
    def on_test_epoch_start(self) -> None: ...
    def on_test_epoch_end(self) -> None: ...
    def on_predict_epoch_start(self) -> None: ...
    def on_predict_epoch_end(self) -> None: ...
    def on_before_zero_grad(self, optimizer: Optimizer) -> None: ...
    def on_before_backward(self, loss: Tensor) -> None: ...
    def on_after_backward(self) -> None: ...
    def on_before_optimizer_step(self, optimizer: Optimizer) -> None: ...
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None: ...
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None: ...

    def on_validation_model_zero_grad(self) -> None:
        self.zero_grad(set_to_none=True)

    def on_validation_model_eval(self) -> None:
        self.trainer.model.eval()

    def on_validation_model_train(self) -> None:
        self.trainer.model.train()

    def on_test_model_eval(self) -> None:
        self.trainer.model.eval()

    def on_test_model_train(self) -> None:
        self.trainer.model.train()

    def on_predict_model_eval(self) -> None:
        self.trainer.model.eval()
