"""The ``Callback`` base class: every PyTorch Lightning 2.x callback hook, as a no-op.

The Trainer dispatches hooks by name (``getattr(cb, "on_train_epoch_end")(trainer, pl_module)``), so a
subclass overrides only what it needs. The Trainer may skip hooks a callback does not override (it
compares the bound function with this class's), which is why every hook lives here and nowhere else.
Signatures are PL 2.x's, so callbacks written for PyTorch Lightning run unchanged.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

Trainer = Any
LightningModule = Any


class Callback:
    """Abstract base for callbacks: override the hooks you need; the rest do nothing."""

    @property
    def state_key(self) -> str:
        """The key of this callback's state in ``checkpoint["callbacks"]``.

        Two instances of one class that must keep separate state (two ModelCheckpoints with different
        monitors, say) override this, usually with :meth:`_generate_state_key`.
        """
        return self.__class__.__qualname__

    @property
    def _legacy_state_key(self) -> "type[Callback]":
        """The key older checkpoints used (the class itself), kept so they still restore."""
        return type(self)

    def _generate_state_key(self, **kwargs: Any) -> str:
        """A state key made of the class name and ``kwargs``, e.g. ``ModelCheckpoint{'monitor': 'x'}``."""
        return f"{self.__class__.__qualname__}{kwargs!r}"

    # -- stage set-up ------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Called when fit, validate, test or predict begins; ``stage`` names which."""

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Called when fit, validate, test or predict ends."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when fit begins."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when fit ends."""

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation sanity check starts."""

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation sanity check ends."""

    # -- training -----------------------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Called when the train batch begins."""

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Called when the train batch ends; ``outputs`` is what ``training_step`` returned."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the train epoch begins."""

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the train epoch ends (after that epoch's validation, as in PL 2.x)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when training begins."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when training ends."""

    # -- validation ---------------------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation epoch begins."""

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation epoch ends."""

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the validation batch begins."""

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the validation batch ends."""

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation loop begins."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the validation loop ends."""

    # -- test ---------------------------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the test epoch begins."""

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the test epoch ends."""

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the test batch begins."""

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the test batch ends."""

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the test begins."""

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the test ends."""

    # -- predict ------------------------------------------------------------------------------------------
    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the predict epoch begins."""

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when the predict epoch ends."""

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the predict batch begins."""

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Called when the predict batch ends."""

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when predict begins."""

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called when predict ends."""

    # -- errors and checkpoints ---------------------------------------------------------------------------
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Called when any trainer execution is interrupted by an exception."""

    def state_dict(self) -> dict[str, Any]:
        """The state to keep in a checkpoint under ``checkpoint["callbacks"][self.state_key]``."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Called when a checkpoint is about to be saved; may add to ``checkpoint``."""

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Called when a checkpoint is loaded, before the callbacks' state is restored."""

    # -- optimization -------------------------------------------------------------------------------------
    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: "torch.Tensor") -> None:
        """Called before ``loss.backward()``."""

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Called after ``loss.backward()`` and before optimizers are stepped."""

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: "torch.optim.Optimizer"
    ) -> None:
        """Called before ``optimizer.step()``."""

    def on_before_zero_grad(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: "torch.optim.Optimizer"
    ) -> None:
        """Called before ``optimizer.zero_grad()``."""
