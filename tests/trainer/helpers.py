"""Small models and datasets for Trainer tests (PL's "BoringModel" style), importable from any
folder under tests/trainer as ``from helpers import BoringModel, quiet_trainer``.

``tests/trainer/conftest.py`` puts this folder on ``sys.path`` (pytest's rootdir-less conftest), so
the callbacks/, loggers/ and tuner/ test folders can import it too.
"""

from __future__ import annotations

from typing import Any

import lightning_kernel.trainer as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset


class RandomDataset(Dataset[Tensor]):
    """``length`` random vectors of ``size`` features, fixed at construction."""

    def __init__(self, size: int = 32, length: int = 64, seed: int | None = None) -> None:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.data = torch.randn(length, size, generator=generator)

    def __getitem__(self, index: int) -> Tensor:
        return self.data[index]

    def __len__(self) -> int:
        return len(self.data)


class RandomLabeledDataset(Dataset[tuple[Tensor, Tensor]]):
    """``(x, y)`` pairs: ``x`` random features, ``y`` a class in ``range(classes)``."""

    def __init__(self, size: int = 32, length: int = 64, classes: int = 10, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(length, size, generator=generator)
        self.y = torch.randint(0, classes, (length,), generator=generator)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return len(self.x)


class BoringModel(pl.LightningModule):
    """A linear layer fit to ones. Logs nothing unless asked; every dataloader has ``batches`` batches.

    - ``training_step`` returns ``{"loss": loss}``; ``validation_step`` logs ``val_loss`` (epoch mean),
      ``test_step`` logs ``test_loss``; override freely.
    - ``configure_optimizers``: SGD(lr=0.1).
    """

    def __init__(self, batches: int = 4, batch_size: int = 2, lr: float = 0.1) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 2)
        self.batches = batches
        self.batch_size = batch_size
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)

    def loss(self, preds: Tensor) -> Tensor:
        return nn.functional.mse_loss(preds, torch.ones_like(preds))

    def step(self, batch: Tensor) -> Tensor:
        return self.loss(self(batch))

    def training_step(self, batch: Tensor, batch_idx: int) -> Any:
        return {"loss": self.step(batch)}

    def validation_step(self, batch: Tensor, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("val_loss", loss)
        return {"x": loss}

    def test_step(self, batch: Tensor, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("test_loss", loss)
        return {"y": loss}

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def _loader(self, seed: int) -> DataLoader[Tensor]:
        return DataLoader(
            RandomDataset(32, self.batches * self.batch_size, seed=seed), batch_size=self.batch_size
        )

    def train_dataloader(self) -> Any:
        return self._loader(1)

    def val_dataloader(self) -> Any:
        return self._loader(2)

    def test_dataloader(self) -> Any:
        return self._loader(3)

    def predict_dataloader(self) -> Any:
        return self._loader(4)


class BoringDataModule(pl.LightningDataModule):
    """The BoringModel's data as a datamodule (the module's own dataloaders are then ignored)."""

    def __init__(self, batches: int = 4, batch_size: int = 2) -> None:
        super().__init__()
        self.batches = batches
        self.batch_size = batch_size

    def _loader(self, seed: int) -> DataLoader[Tensor]:
        return DataLoader(
            RandomDataset(32, self.batches * self.batch_size, seed=seed), batch_size=self.batch_size
        )

    def train_dataloader(self) -> Any:
        return self._loader(11)

    def val_dataloader(self) -> Any:
        return self._loader(12)

    def test_dataloader(self) -> Any:
        return self._loader(13)

    def predict_dataloader(self) -> Any:
        return self._loader(14)


class MLP(pl.LightningModule):
    """The benchmark's model: a 3-layer MLP 32-64-64-10 with cross-entropy, logging ``train_loss``."""

    def __init__(self, lr: float = 0.05, log_every_step: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if self.hparams.log_every_step:
            self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


QUIET: dict[str, Any] = {
    "enable_progress_bar": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "logger": False,
}


def quiet_trainer(root: Any, **kwargs: Any) -> pl.Trainer:
    """A CPU Trainer in ``root`` without the default progress bar, checkpointing, summary or logger.

    Any keyword overrides those defaults, e.g. ``quiet_trainer(tmp_path, logger=CSVLogger(tmp_path))``.
    """
    options: dict[str, Any] = {"default_root_dir": str(root), "accelerator": "cpu", "max_epochs": 1, **QUIET}
    options.update(kwargs)
    return pl.Trainer(**options)
