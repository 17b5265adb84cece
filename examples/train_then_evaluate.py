"""Train in one Work, then evaluate its best checkpoint in another.

lightning-kernel run app examples/train_then_evaluate.py

The training Work only creates a Trainer and calls fit: inside a Work, the Trainer publishes its
progress as the Work's ``trainer_state`` (epoch, global step, logged metrics, checkpoint Paths), writes
its checkpoints into the Work's ``lit://checkpoints`` folder, and, if the run is interrupted
(Ctrl+C, a lost kernel) and resumed with ``lightning-kernel resume``, carries on from its last checkpoint.
The flow hands the best checkpoint, a Path, to the evaluating Work, which receives the file before its
``run()`` starts. ``TRAIN_EPOCHS`` and ``TRAIN_STEP_S`` (environment) lengthen training for a demo.
"""

import os
import time

import lightning_kernel.trainer as pl
import torch
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.trainer.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def dataset(split: int) -> TensorDataset:
    """A fixed two-class problem: the label is whether the features sum above zero."""
    generator = torch.Generator().manual_seed(split)
    x = torch.randn(256, 8, generator=generator)
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


class Classifier(pl.LightningModule):
    def __init__(self, lr: float = 0.1, step_s: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        if self.hparams.step_s:
            time.sleep(self.hparams.step_s)  # a slower "model", so that a demo can be interrupted
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        return DataLoader(dataset(0), batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(dataset(1), batch_size=64)


class Train(LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.final_loss = None

    def run(self) -> None:
        pl.seed_everything(7)
        epochs = int(os.environ.get("TRAIN_EPOCHS", "4"))
        model = Classifier(step_s=float(os.environ.get("TRAIN_STEP_S", "0")))
        trainer = pl.Trainer(
            max_epochs=epochs,
            callbacks=[ModelCheckpoint(monitor="val_loss", save_top_k=2)],
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
        )
        trainer.fit(model)
        self.final_loss = float(trainer.callback_metrics["train_loss"])


class Evaluate(LightningWork):
    def __init__(self) -> None:
        super().__init__()
        self.val_acc = None
        self.checkpoint = None

    def run(self, checkpoint) -> None:
        # the best checkpoint of the training Work, already copied into this Work's folder
        self.checkpoint = checkpoint
        model = Classifier.load_from_checkpoint(str(checkpoint))
        trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        (result,) = trainer.validate(model, verbose=False)
        self.val_acc = result["val_acc"]


class Root(LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.train = Train()
        self.evaluate = Evaluate()

    def run(self) -> None:
        self.train.run()
        if not self.train.has_succeeded:
            return
        best = self.train.trainer_state["best_checkpoint"]
        self.evaluate.run(best)
        if self.evaluate.has_succeeded:
            state = self.train.trainer_state
            self.stop(
                f"trained {state['global_step']} steps; best val_loss {state['best_model_score']:.4f} at "
                f"{best['path']}; its val_acc {self.evaluate.val_acc:.3f}"
            )


app = LightningApp(Root())
