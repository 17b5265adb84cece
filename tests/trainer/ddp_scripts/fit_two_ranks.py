"""Run by test_ddp.py as `python fit_two_ranks.py OUT [strategy]` or under torchrun: fits on 2 CPU ranks
and writes what rank 0 saw to OUT (a torch file)."""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lightning_kernel.trainer as pl
from helpers import RandomDataset


class Model(pl.LightningModule):
    def __init__(self, batch_size: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(32, 2)
        self.batch_size = batch_size

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        loss = nn.functional.mse_loss(self.layer(batch), torch.ones(batch.shape[0], 2))
        self.log("rank", float(self.global_rank), on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def train_dataloader(self) -> Any:
        return DataLoader(RandomDataset(32, 16, seed=4), batch_size=self.batch_size)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main() -> None:
    out = sys.argv[1]
    strategy = sys.argv[2] if len(sys.argv) > 2 else "ddp"
    model = Model()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=os.path.dirname(out),
    )
    trainer.fit(model)
    gathered = model.all_gather(torch.tensor([float(trainer.global_rank)]))
    decision = trainer.strategy.broadcast(f"from-{trainer.global_rank}")
    if trainer.is_global_zero:
        torch.save(
            {
                "weight": model.layer.weight.detach(),
                "world_size": trainer.world_size,
                "global_step": trainer.global_step,
                "rank_mean": float(trainer.callback_metrics["rank"]),
                "gathered": gathered.flatten().tolist(),
                "broadcast": decision,
                "batches": trainer.num_training_batches,
            },
            out,
        )


if __name__ == "__main__":
    main()
