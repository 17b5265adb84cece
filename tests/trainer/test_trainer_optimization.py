"""configure_optimizers forms, LR schedulers, accumulation, clipping, manual optimization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader


def _model(conf: Any, **kwargs: Any) -> BoringModel:
    class Model(BoringModel):
        def configure_optimizers(self) -> Any:
            return conf(self)

    return Model(**kwargs)


def _sgd(m: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(m.parameters(), lr=0.1)


def _step(m: nn.Module, opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)


@pytest.mark.parametrize(
    "form",
    [
        lambda m: _sgd(m),
        lambda m: [_sgd(m)],
        lambda m: (lambda o: ([o], [_step(m, o)]))(_sgd(m)),
        lambda m: (lambda o: {"optimizer": o, "lr_scheduler": _step(m, o)})(_sgd(m)),
        lambda m: (
            lambda o: {"optimizer": o, "lr_scheduler": {"scheduler": _step(m, o), "interval": "epoch"}}
        )(_sgd(m)),
        lambda m: (lambda o: [{"optimizer": o, "lr_scheduler": _step(m, o)}])(_sgd(m)),
    ],
    ids=["optimizer", "list", "two-lists", "dict", "dict-with-config", "list-of-dicts"],
)
def test_every_configure_optimizers_form(tmp_path: Path, form: Any) -> None:
    model = _model(form)
    before = model.layer.weight.detach().clone()
    trainer = quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0)
    trainer.fit(model)
    assert len(trainer.optimizers) == 1 and isinstance(trainer.optimizers[0], torch.optim.SGD)
    assert not torch.equal(before, model.layer.weight)
    if trainer.lr_scheduler_configs:
        config = trainer.lr_scheduler_configs[0]
        assert (config.interval, config.frequency) == ("epoch", 1)
        assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_none_trains_without_an_optimizer(tmp_path: Path) -> None:
    model = _model(lambda m: None)
    before = model.layer.weight.detach().clone()
    with pytest.warns(UserWarning, match="returned `None`, this fit will run with no optimizer"):
        quiet_trainer(tmp_path, limit_val_batches=0).fit(model)
    assert torch.equal(before, model.layer.weight)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (lambda m: "adam", "configure_optimizers\\(\\) must return one of"),
        (lambda m: [_sgd(m), _sgd(m)], "multiple optimizers is only supported with manual optimization"),
        (lambda m: {"lr_scheduler": None}, "no 'optimizer' key"),
        (
            lambda m: (
                lambda o: {"optimizer": o, "lr_scheduler": {"scheduler": _step(m, o), "interval": "batch"}}
            )(_sgd(m)),
            'must be "step" or "epoch"',
        ),
        (
            lambda m: (
                lambda o: {"optimizer": o, "lr_scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(o)}
            )(_sgd(m)),
            "must include a monitor",
        ),
        (lambda m: ([_sgd(m)], [_step(m, _sgd(m))]), "attached with an optimizer that wasn't returned"),
    ],
)
def test_bad_configurations(tmp_path: Path, conf: Any, message: str) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        quiet_trainer(tmp_path).fit(_model(conf))


def test_missing_configure_optimizers_says_what_to_write(tmp_path: Path) -> None:
    class NoOptim(BoringModel):
        configure_optimizers = BoringModel.__mro__[1].configure_optimizers  # the LightningModule default

    with pytest.raises(MisconfigurationException, match=r"has no `configure_optimizers\(\)`.*torch.optim"):
        quiet_trainer(tmp_path).fit(NoOptim())


@pytest.mark.parametrize(
    ("interval", "frequency", "epochs", "steps"),
    [
        ("step", 1, 2, 8),
        ("step", 3, 2, 2),
        ("epoch", 2, 3, 1),
        ("epoch", 1, 3, 3),
    ],
)
def test_scheduler_interval_and_frequency(
    tmp_path: Path, interval: str, frequency: int, epochs: int, steps: int
) -> None:
    def conf(m: nn.Module) -> Any:
        o = _sgd(m)
        return {
            "optimizer": o,
            "lr_scheduler": {"scheduler": _step(m, o), "interval": interval, "frequency": frequency},
        }

    trainer = quiet_trainer(tmp_path, max_epochs=epochs, limit_val_batches=0)
    trainer.fit(_model(conf))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**steps)


def test_plateau_scheduler_follows_the_monitored_metric(tmp_path: Path) -> None:
    class Flat(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("flat", 1.0)

        def configure_optimizers(self) -> Any:
            o = _sgd(self)
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5)
            return {"optimizer": o, "lr_scheduler": plateau, "monitor": "flat"}

    trainer = quiet_trainer(tmp_path, max_epochs=3, num_sanity_val_steps=0)
    trainer.fit(Flat())
    # epoch 0 sets the best value; epochs 1 and 2 do not improve on it
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_plateau_on_a_metric_never_logged(tmp_path: Path) -> None:
    def conf(m: nn.Module, strict: bool = True) -> Any:
        o = _sgd(m)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(o)
        return {"optimizer": o, "lr_scheduler": {"scheduler": plateau, "monitor": "nope", "strict": strict}}

    with pytest.raises(
        MisconfigurationException, match=r"conditioned on metric nope which is not available.*val_loss"
    ):
        quiet_trainer(tmp_path, num_sanity_val_steps=0).fit(_model(conf))
    with pytest.warns(UserWarning, match="strict is set to `False`"):
        quiet_trainer(tmp_path, num_sanity_val_steps=0).fit(_model(lambda m: conf(m, strict=False)))


def test_accumulating_two_batches_equals_one_batch_twice_as_big(tmp_path: Path) -> None:
    class Data(BoringModel):
        def __init__(self, batch_size: int) -> None:
            super().__init__(batch_size=batch_size)

        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 16, seed=4), batch_size=self.batch_size)

    torch.manual_seed(0)
    small = Data(batch_size=2)
    torch.manual_seed(0)
    big = Data(batch_size=4)
    t_small = quiet_trainer(tmp_path, accumulate_grad_batches=2, limit_val_batches=0)
    t_small.fit(small)
    t_big = quiet_trainer(tmp_path, limit_val_batches=0)
    t_big.fit(big)
    assert t_small.global_step == t_big.global_step == 4
    torch.testing.assert_close(small.layer.weight, big.layer.weight)


def test_accumulation_steps_on_the_last_partial_group(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, accumulate_grad_batches=3, limit_val_batches=0, max_epochs=2)
    trainer.fit(BoringModel(batches=4))  # groups of 3 + 1 per epoch
    assert trainer.global_step == 4


class _Recorder(torch.optim.SGD):
    """Records the gradients it is asked to apply."""

    seen: list[torch.Tensor]

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = closure() if closure is not None else None
        grads = [
            p.grad.detach().flatten() for g in self.param_groups for p in g["params"] if p.grad is not None
        ]
        self.seen.append(torch.cat(grads))
        super().step()
        return loss


@pytest.mark.parametrize("algorithm", ["value", "norm"])
def test_gradient_clipping(tmp_path: Path, algorithm: str) -> None:
    recorder_seen: list[torch.Tensor] = []

    def conf(m: nn.Module) -> Any:
        opt = _Recorder(m.parameters(), lr=0.1)
        opt.seen = recorder_seen
        return opt

    quiet_trainer(
        tmp_path, gradient_clip_val=1e-3, gradient_clip_algorithm=algorithm, limit_val_batches=0
    ).fit(_model(conf))
    assert len(recorder_seen) == 4
    for grads in recorder_seen:
        if algorithm == "value":
            assert grads.abs().max() <= 1e-3 + 1e-9
        else:
            assert grads.norm() <= 1e-3 * (1 + 1e-4)


def test_bad_clipping_arguments(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match="norm2 is invalid"):
        quiet_trainer(tmp_path, gradient_clip_val=1.0, gradient_clip_algorithm="norm2")
    with pytest.raises(TypeError, match="should be an int or a float"):
        quiet_trainer(tmp_path, gradient_clip_val="1")


class Manual(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.other = nn.Linear(32, 2)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        opt_a, opt_b = self.optimizers()
        assert isinstance(opt_a, torch.optim.SGD) and isinstance(opt_b, torch.optim.Adam)
        sched = self.lr_schedulers()
        with self.toggled_optimizer(opt_a):
            assert not self.other.weight.requires_grad
            loss = self.step(batch)
            opt_a.zero_grad()
            self.manual_backward(loss)
            opt_a.step()
        loss_b = self.loss(self.other(batch))
        opt_b.zero_grad()
        self.manual_backward(loss_b)
        opt_b.step()
        sched.step()
        self.log("loss_b", loss_b)
        return loss

    def configure_optimizers(self) -> Any:
        a = torch.optim.SGD(self.layer.parameters(), lr=0.1)
        b = torch.optim.Adam(self.other.parameters(), lr=0.1)
        return [a, b], [torch.optim.lr_scheduler.StepLR(a, 1, 0.9)]


def test_manual_optimization_with_two_optimizers(tmp_path: Path) -> None:
    model = Manual()
    before = (model.layer.weight.detach().clone(), model.other.weight.detach().clone())
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(model)
    assert trainer.global_step == 8  # every optimizer.step() counts, as in PL
    assert not torch.equal(before[0], model.layer.weight) and not torch.equal(before[1], model.other.weight)
    assert model.other.weight.requires_grad
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**4)
    assert "loss_b" in trainer.callback_metrics


def test_manual_optimization_refuses_automatic_features(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match="gradient clipping is not supported for manual"):
        quiet_trainer(tmp_path, gradient_clip_val=1.0).fit(Manual())
    with pytest.raises(MisconfigurationException, match="accumulation is not supported for manual"):
        quiet_trainer(tmp_path, accumulate_grad_batches=2).fit(Manual())

    class Wrong(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.manual_backward(self.step(batch))

    with pytest.raises(MisconfigurationException, match="automatic_optimization = False"):
        quiet_trainer(tmp_path).fit(Wrong())


def test_overridden_optimizer_step_gets_a_lightning_optimizer_and_closure(tmp_path: Path) -> None:
    calls: list[tuple[int, str]] = []

    class Custom(BoringModel):
        def optimizer_step(
            self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
        ) -> None:
            calls.append((batch_idx, type(optimizer).__name__))
            assert isinstance(optimizer, torch.optim.SGD)
            optimizer.step(closure=optimizer_closure)

    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Custom())
    assert calls == [(i, "LightningSGD") for i in range(4)]
    assert trainer.global_step == 4


def test_lbfgs_calls_the_closure_repeatedly(tmp_path: Path) -> None:
    steps: list[int] = []

    class Lbfgs(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            steps.append(batch_idx)
            return super().training_step(batch, batch_idx)

        def configure_optimizers(self) -> Any:
            return torch.optim.LBFGS(self.parameters(), lr=0.1, max_iter=3)

    trainer = quiet_trainer(tmp_path, limit_val_batches=0, limit_train_batches=2)
    trainer.fit(Lbfgs())
    assert trainer.global_step == 2 and len(steps) > 2
