"""Per-step overhead of ``lightning_kernel.trainer.Trainer`` over a plain PyTorch loop.

Times are this process's CPU time (``time.process_time``, one torch thread), which other
processes on a shared machine disturb less than wall time. Both run in this process on the same data and initial weights: a 3-layer MLP (32-64-64-10), 20k
samples, batch 64, SGD, ``self.log("train_loss", loss)`` every step. Prints per-step times, the
overhead, and whether the two loops produced the same losses bit for bit.

    python bench/trainer_overhead.py [--epochs 3] [--rounds 5] [--logger csv|none] [--progress-bar]
                                     [--pytorch-lightning]  (needs pytorch-lightning installed)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import lightning_kernel.trainer as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def make_loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(20_000, 32, generator=generator)
    y = torch.randint(0, 10, (20_000,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)


def plain(init: dict[str, Tensor], loader: DataLoader[Any], epochs: int) -> tuple[float, list[Tensor]]:
    net = make_net()
    net.load_state_dict(init)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    losses: list[Tensor] = []
    torch.manual_seed(123)
    start = time.process_time()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    return time.process_time() - start, losses


def module_class(base: type) -> type:
    """The bench's LightningModule on ``base`` (ours or PyTorch Lightning's): the same code for both."""

    class Module(base):  # type: ignore[valid-type,misc]
        def __init__(self, init: dict[str, Tensor]) -> None:
            super().__init__()
            self.net = make_net()
            self.net.load_state_dict(init)
            self.losses: list[Tensor] = []

        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            self.losses.append(loss.detach())
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return Module


def with_trainer(
    init: dict[str, Tensor],
    loader: DataLoader[Any],
    epochs: int,
    logger: str,
    progress_bar: bool,
    package: Any = pl,
) -> tuple[float, list[Tensor]]:
    """CPU seconds of ``fit`` and the losses, on ``package``'s Trainer: ours, or ``pytorch_lightning``."""
    module = module_class(package.LightningModule)(init)
    with tempfile.TemporaryDirectory() as root:
        chosen: Any = package.loggers.CSVLogger(root) if logger == "csv" else False
        trainer = package.Trainer(
            max_epochs=epochs,
            logger=chosen,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress_bar,
            default_root_dir=root,
            accelerator="cpu",
            num_sanity_val_steps=0,
        )
        torch.manual_seed(123)
        start = time.process_time()
        trainer.fit(module, loader)
        elapsed = time.process_time() - start
    return elapsed, module.losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--logger", choices=["csv", "none"], default="csv")
    parser.add_argument("--progress-bar", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings steady)")
    parser.add_argument(
        "--pytorch-lightning",
        action="store_true",
        help="also time PyTorch Lightning's Trainer, in the same rounds",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in make_net().state_dict().items()}
    loader = make_loader()
    steps = len(loader) * args.epochs
    plain_times: list[float] = []
    trainer_times: list[float] = []
    pl_times: list[float] = []
    same = True
    for _ in range(args.rounds):
        t_plain, plain_losses = plain(init, loader, args.epochs)
        t_trainer, trainer_losses = with_trainer(init, loader, args.epochs, args.logger, args.progress_bar)
        plain_times.append(t_plain / steps * 1e3)
        trainer_times.append(t_trainer / steps * 1e3)
        if args.pytorch_lightning:
            import pytorch_lightning

            t_pl, _ = with_trainer(
                init, loader, args.epochs, args.logger, args.progress_bar, pytorch_lightning
            )
            pl_times.append(t_pl / steps * 1e3)
        same = (
            same
            and len(plain_losses) == len(trainer_losses)
            and all(torch.equal(a, b) for a, b in zip(plain_losses, trainer_losses, strict=False))
        )
    p, t = statistics.median(plain_times), statistics.median(trainer_times)
    diffs = sorted(b - a for a, b in zip(plain_times, trainer_times, strict=True))
    print(
        f"steps per run: {steps} ({args.epochs} epochs x {len(loader)} batches), rounds: {args.rounds}, "
        f"logger: {args.logger}, progress bar: {args.progress_bar}, torch threads: {args.threads}"
    )
    print(f"plain loop   : {p:.4f} ms/step (median; min {min(plain_times):.4f})")
    print(f"Trainer      : {t:.4f} ms/step (median; min {min(trainer_times):.4f})")
    print(
        f"overhead     : {statistics.median(diffs):+.4f} ms/step (median of the paired rounds; "
        f"quartiles {diffs[len(diffs) // 4]:+.4f} .. {diffs[(3 * len(diffs)) // 4]:+.4f})"
    )
    print(f"same losses bit for bit: {same}")
    if pl_times:
        pl_diffs = sorted(b - a for a, b in zip(plain_times, pl_times, strict=True))
        print(
            f"PyTorch Lightning: {statistics.median(pl_times):.4f} ms/step (median), overhead "
            f"{statistics.median(pl_diffs):+.4f} ms/step over the same plain loop, same rounds"
        )


if __name__ == "__main__":
    main()
