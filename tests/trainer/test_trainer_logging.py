"""``self.log``: PL 2.x's keys, defaults per hook, reductions, and what reaches the loggers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer import MisconfigurationException
from torch.utils.data import DataLoader


class RecordingLogger:
    """The logger interface the Trainer calls, recording every call."""

    name = "rec"
    version = 0
    save_dir: str | None = None
    log_dir: str | None = None

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.hparams: list[Any] = []
        self.finalized: list[str] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any) -> None:
        self.hparams.append(dict(params))

    def save(self) -> None:
        pass

    def finalize(self, status: str) -> None:
        self.finalized.append(status)


class Scripted(BoringModel):
    """Logs ``batch_idx`` (so reductions are easy to predict) with the given options."""

    def __init__(self, batches: int = 4, **options: Any) -> None:
        super().__init__(batches=batches)
        self.options = options

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self.log("v", float(batch_idx + 1), **self.options)
        return super().training_step(batch, batch_idx)


def test_training_step_defaults_to_step_values(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Scripted())
    assert set(trainer.callback_metrics) == {"v"}
    assert float(trainer.callback_metrics["v"]) == 4.0  # the last step's value
    # PL fills logged_metrics after each batch even without a logger
    assert {k: float(v) for k, v in trainer.logged_metrics.items()} == {"v": 4.0}
    assert trainer.progress_bar_metrics == {}


def test_step_and_epoch_fork_the_keys(tmp_path: Path) -> None:
    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, limit_val_batches=0, logger=logger, log_every_n_steps=1)
    trainer.fit(Scripted(on_step=True, on_epoch=True, prog_bar=True))
    assert {k: float(v) for k, v in trainer.callback_metrics.items()} == {
        "v": 2.5,
        "v_step": 4.0,
        "v_epoch": 2.5,
    }
    assert set(trainer.logged_metrics) == {"v_step", "v_epoch"}
    assert trainer.progress_bar_metrics == {"v_step": 4.0, "v_epoch": 2.5}
    steps = [(step, m) for step, m in logger.metrics]
    assert steps[:4] == [(i, {"v_step": float(i + 1), "epoch": 0}) for i in range(4)]
    assert steps[4] == (3, {"v_epoch": 2.5, "epoch": 0})  # epoch metrics at the last batch's step


@pytest.mark.parametrize(
    ("reduce_fx", "expected"), [("sum", 10.0), ("max", 4.0), ("min", 1.0), (torch.mean, 2.5)]
)
def test_epoch_reductions(tmp_path: Path, reduce_fx: Any, expected: float) -> None:
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Scripted(on_step=False, on_epoch=True, reduce_fx=reduce_fx))
    assert float(trainer.callback_metrics["v"]) == expected


def test_epoch_mean_is_weighted_by_batch_size(tmp_path: Path) -> None:
    class Uneven(BoringModel):
        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 5), batch_size=2)  # batches of 2, 2, 1

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("v", float(batch_idx), on_step=False, on_epoch=True)
            self.log("explicit", float(batch_idx), on_step=False, on_epoch=True, batch_size=1)
            return super().training_step(batch, batch_idx)

    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Uneven())
    assert float(trainer.callback_metrics["v"]) == pytest.approx((0 * 2 + 1 * 2 + 2 * 1) / 5)
    assert float(trainer.callback_metrics["explicit"]) == pytest.approx(1.0)


def test_logging_every_n_steps_and_hparams(tmp_path: Path) -> None:
    class Logs(BoringModel):
        def __init__(self, batches: int = 10, lr: float = 0.1) -> None:
            super().__init__(batches=batches, lr=lr)
            self.save_hyperparameters()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            out = super().training_step(batch, batch_idx)
            self.log("loss", out["loss"])
            return out

    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, max_epochs=2, logger=logger, log_every_n_steps=4, limit_val_batches=0)
    trainer.fit(Logs())
    step_logs = [step for step, m in logger.metrics if "loss" in m]
    assert step_logs == [3, 7, 11, 15, 19]
    assert logger.hparams == [{"batches": 10, "lr": 0.1}]
    assert logger.finalized == ["success"]
    assert set(trainer.logged_metrics) == {"loss"}


def test_validation_defaults_to_epoch_means_and_validate_returns_them(tmp_path: Path) -> None:
    class Val(BoringModel):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("val_v", float(batch_idx))
            self.log("val_s", float(batch_idx), on_step=True, prog_bar=True)

    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, logger=logger, num_sanity_val_steps=2)
    trainer.fit(Val())
    assert float(trainer.callback_metrics["val_v"]) == 1.5
    assert "val_s_step" not in trainer.callback_metrics  # eval step values stay out of callback_metrics
    assert float(trainer.callback_metrics["val_s_epoch"]) == 1.5
    eval_steps = [(step, m) for step, m in logger.metrics if "val_s_step" in m]
    assert [step for step, _ in eval_steps] == [0, 1, 2, 3]  # no sanity-check batches
    epoch_log = [m for _, m in logger.metrics if "val_v" in m]
    assert epoch_log == [{"val_v": 1.5, "val_s_epoch": 1.5, "epoch": 0}]
    result = quiet_trainer(tmp_path).validate(Val(), verbose=False)
    assert result == [{"val_v": 1.5, "val_s_epoch": 1.5}]


def test_multiple_val_dataloaders_get_suffixed_keys(tmp_path: Path) -> None:
    class TwoLoaders(BoringModel):
        def val_dataloader(self) -> Any:
            return [self._loader(2), DataLoader(RandomDataset(32, 4), batch_size=2)]

        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            self.log("which", float(dataloader_idx))

        def on_validation_epoch_end(self) -> None:
            self.log("shared", 7.0)

    result = quiet_trainer(tmp_path).validate(TwoLoaders(), verbose=False)
    assert result == [
        {"which/dataloader_idx_0": 0.0, "shared": 7.0},
        {"which/dataloader_idx_1": 1.0, "shared": 7.0},
    ]


def test_callbacks_and_epoch_hooks_can_log(tmp_path: Path) -> None:
    class Logs(pl.Callback):
        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            pl_module.log("from_callback", float(batch_idx), on_step=False, on_epoch=True, reduce_fx="max")

    class Model(BoringModel):
        def on_train_epoch_end(self) -> None:
            self.log("epoch_end", 3.0)

    trainer = quiet_trainer(tmp_path, callbacks=[Logs()], limit_val_batches=0)
    trainer.fit(Model())
    assert float(trainer.callback_metrics["from_callback"]) == 3.0
    assert float(trainer.callback_metrics["epoch_end"]) == 3.0


def test_log_dict_logger_false_and_int_values(tmp_path: Path) -> None:
    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log_dict({"a": 1.0, "b": torch.tensor(2.0)}, logger=False, prog_bar=True)
            self.log("count", torch.tensor(batch_idx))
            return super().training_step(batch, batch_idx)

    logger = RecordingLogger()
    trainer = quiet_trainer(tmp_path, logger=logger, limit_val_batches=0, log_every_n_steps=1)
    with pytest.warns(UserWarning, match="needs to be floating"):
        trainer.fit(Model())
    assert all("a" not in m and "b" not in m for _, m in logger.metrics)
    assert trainer.progress_bar_metrics == {"a": 1.0, "b": 2.0}
    assert trainer.callback_metrics["count"].dtype == torch.float32


def test_sanity_check_metrics_are_discarded(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    class Peek(pl.Callback):
        def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
            seen.append(set(trainer.callback_metrics))

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            seen.append(set(trainer.callback_metrics))

    quiet_trainer(tmp_path, callbacks=[Peek()], limit_train_batches=1).fit(BoringModel())
    assert seen == [{"val_loss"}, set()]


@pytest.mark.parametrize(
    ("hook", "kwargs", "error", "message"),
    [
        ("on_fit_start", {}, MisconfigurationException, "You can't `self.log\\(\\)` inside `on_fit_start`"),
        ("on_train_epoch_end", {"on_step": True}, MisconfigurationException, "on_step=True.*must be one of"),
        ("training_step", {"value": torch.ones(2)}, ValueError, "the tensor must have a single element"),
        ("training_step", {"reduce_fx": "median"}, MisconfigurationException, "Found: median"),
        ("training_step", {"value": {"a": 1}}, ValueError, "`dict` values cannot be logged"),
        ("training_step", {"value": {"a": {"b": 1}}}, ValueError, "nested dictionaries cannot be logged"),
        ("training_step", {"value": "x"}, ValueError, "`str` values cannot be logged"),
        (
            "training_step",
            {"value": None},
            ValueError,
            "`self.log\\(x, None\\)` was called, but `NoneType` values",
        ),
    ],
)
def test_bad_log_calls_say_what_to_change(
    tmp_path: Path, hook: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    value = kwargs.pop("value", 1.0)

    class Model(BoringModel):
        pass

    def logging_hook(self: Any, *args: Any) -> Any:
        self.log("x", value, **kwargs)
        return BoringModel.training_step(self, *args) if hook == "training_step" else None

    setattr(Model, hook, logging_hook)
    with pytest.raises(error, match=message):
        quiet_trainer(tmp_path, limit_val_batches=0).fit(Model())


@pytest.mark.parametrize("spelling", ["SUM", "Sum", "sum", torch.sum, sum])
def test_reduce_fx_takes_every_spelling_pl_takes(tmp_path: Path, spelling: Any) -> None:
    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("ones", 1.0, on_step=False, on_epoch=True, reduce_fx=spelling)
            return super().training_step(batch, batch_idx)

    trainer = quiet_trainer(tmp_path, limit_val_batches=0, limit_train_batches=3)
    trainer.fit(Model())
    assert trainer.callback_metrics["ones"].item() == 3.0


def test_same_key_twice_with_different_options_is_refused(tmp_path: Path) -> None:
    class Model(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("x", 1.0, prog_bar=batch_idx == 1)
            return super().training_step(batch, batch_idx)

    with pytest.raises(MisconfigurationException, match="twice in `training_step` with different arguments"):
        quiet_trainer(tmp_path, limit_val_batches=0).fit(Model())


def test_log_outside_a_trainer_is_ignored() -> None:
    model = BoringModel()
    model.log("x", 1.0)  # PL warns and does nothing; here it simply does nothing
    assert model._trainer is None


def test_step_values_survive_the_validation_that_follows_them(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(Scripted())
    assert {"v", "val_loss"} <= set(trainer.callback_metrics)
    assert float(trainer.callback_metrics["v"]) == 4.0
