"""Run by test_callbacks_ddp.py as ``python ddp_callbacks_script.py OUT``: a 2-process gloo fit with
ModelCheckpoint, EarlyStopping and a CSVLogger. Each rank writes what it saw to ``OUT/rank<N>.json``.

Rank 0's metric keeps improving; rank 1's stalls after epoch 1, so early stopping must stop BOTH
ranks when rank 1 gives up (any rank stopping stops all, as in PL).
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lightning_kernel.trainer as pl
from helpers import BoringModel
from lightning_kernel.trainer.callbacks import EarlyStopping, ModelCheckpoint
from lightning_kernel.trainer.loggers import CSVLogger

SCRIPTS = {0: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1: [0.9, 0.8, 0.85, 0.86, 0.1, 0.1]}


class RankScripted(BoringModel):
    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            value = SCRIPTS[self.global_rank][self.current_epoch]
            self.log("val_score", torch.tensor(value))


def main(out: str) -> None:
    checkpoint = ModelCheckpoint(dirpath=os.path.join(out, "ck"), filename="{epoch}", monitor="val_score")
    stopping = EarlyStopping(monitor="val_score", patience=2)
    trainer = pl.Trainer(
        default_root_dir=out,
        accelerator="cpu",
        strategy="ddp",
        devices=2,
        max_epochs=6,
        num_sanity_val_steps=0,
        callbacks=[checkpoint, stopping],
        logger=CSVLogger(out),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(RankScripted(batches=2))
    report = {
        "rank": trainer.global_rank,
        "current_epoch": trainer.current_epoch,
        "stopped_epoch": stopping.stopped_epoch,
        "best_model_path": checkpoint.best_model_path,
        "dirpath": checkpoint.dirpath,
        "log_dir": trainer.log_dir,
    }
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
