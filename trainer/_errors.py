"""The errors the Trainer raises on purpose.

``MisconfigurationException`` keeps PyTorch Lightning's name so that ``except`` clauses written for PL
keep working; it is a :class:`~lightning_kernel.errors.ConfigError` (a setting that cannot be used).
``CheckpointError`` is a checkpoint that cannot be read or does not come from a Trainer::

    KernelError
    ├── ConfigError
    │   └── MisconfigurationException   a Trainer argument, hook result or logged key that cannot be used
    └── CheckpointError                 a corrupt, truncated or foreign checkpoint file
"""

from lightning_kernel.errors import ConfigError, KernelError


class MisconfigurationException(ConfigError):
    """A Trainer argument, a LightningModule hook result or a logged key that cannot be used."""


class CheckpointError(KernelError):
    """A checkpoint that cannot be read, or that was not written by ``Trainer.save_checkpoint``."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"checkpoint {path!r}: {reason}")
