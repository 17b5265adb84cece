"""Hooks run in PL 2.x's documented order, callbacks before the module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringModel, quiet_trainer

MODULE_HOOKS = [
    "configure_callbacks",
    "prepare_data",
    "setup",
    "configure_model",
    "configure_optimizers",
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "on_before_backward",
    "backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "optimizer_step",
    "lr_scheduler_step",
    "training_step",
    "validation_step",
    "test_step",
    "predict_step",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_validation_model_zero_grad",
    "on_test_model_eval",
    "on_test_model_train",
    "on_predict_model_eval",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "teardown",
]
CALLBACK_HOOKS = [
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_sanity_check_start",
    "on_sanity_check_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_save_checkpoint",
    "on_load_checkpoint",
]


def _recording(cls: type, names: list[str], prefix: str, calls: list[str], skip_self: bool) -> type:
    """A subclass of ``cls`` whose listed methods append ``prefix + name`` to ``calls`` on entry."""

    def make(name: str) -> Any:
        original = getattr(cls, name)

        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(prefix + name)
            return original(self, *args, **kwargs)

        return hook

    return type(f"Recording{cls.__name__}", (cls,), {n: make(n) for n in names})


class _Base(BoringModel):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1)]


def _setup(tmp_path: Path, skip: tuple[str, ...] = ()) -> tuple[Any, Any, list[str]]:
    calls: list[str] = []
    model_cls = _recording(_Base, [n for n in MODULE_HOOKS if n not in skip], "", calls, skip_self=False)
    callback_cls = _recording(pl.Callback, CALLBACK_HOOKS, "Callback.", calls, skip_self=False)
    return model_cls(batches=2), callback_cls(), calls


def _train_batch(with_optimizer_step_hook: bool, last: bool) -> list[str]:
    hooks = [
        "on_before_batch_transfer",
        "transfer_batch_to_device",
        "on_after_batch_transfer",
        "Callback.on_train_batch_start",
        "on_train_batch_start",
        *(["optimizer_step"] if with_optimizer_step_hook else []),
        "training_step",
        "Callback.on_before_zero_grad",
        "on_before_zero_grad",
        "optimizer_zero_grad",
        "Callback.on_before_backward",
        "on_before_backward",
        "backward",
        "Callback.on_after_backward",
        "on_after_backward",
        "Callback.on_before_optimizer_step",
        "on_before_optimizer_step",
        "configure_gradient_clipping",
    ]
    if last:
        hooks.append("lr_scheduler_step")
    return [*hooks, "Callback.on_train_batch_end", "on_train_batch_end"]


def _eval_batch(stage: str) -> list[str]:
    return [
        "on_before_batch_transfer",
        "transfer_batch_to_device",
        "on_after_batch_transfer",
        f"Callback.on_{stage}_batch_start",
        f"on_{stage}_batch_start",
        f"{stage}_step",
        f"Callback.on_{stage}_batch_end",
        f"on_{stage}_batch_end",
    ]


def _eval_run(stage: str, batches: int) -> list[str]:
    return [
        f"on_{stage}_model_eval",
        f"Callback.on_{stage}_start",
        f"on_{stage}_start",
        f"Callback.on_{stage}_epoch_start",
        f"on_{stage}_epoch_start",
        *[h for _ in range(batches) for h in _eval_batch(stage)],
        f"Callback.on_{stage}_epoch_end",
        f"on_{stage}_epoch_end",
        f"Callback.on_{stage}_end",
        f"on_{stage}_end",
        f"on_{stage}_model_train",
    ]


@pytest.mark.parametrize("optimizer_step_hook", [True, False], ids=["optimizer_step-overridden", "fast-path"])
def test_fit_hook_order(tmp_path: Path, optimizer_step_hook: bool) -> None:
    skip = () if optimizer_step_hook else ("optimizer_step",)
    model, callback, calls = _setup(tmp_path, skip)
    trainer = quiet_trainer(
        tmp_path, callbacks=[callback], max_epochs=1, limit_val_batches=1, num_sanity_val_steps=1
    )
    trainer.fit(model)
    expected = [
        "configure_callbacks",
        "prepare_data",
        "Callback.setup",
        "setup",
        "configure_model",
        "configure_optimizers",
        "Callback.on_fit_start",
        "on_fit_start",
        "Callback.on_sanity_check_start",
        "val_dataloader",
        *_eval_run("validation", 1),
        "Callback.on_sanity_check_end",
        "train_dataloader",
        "Callback.on_train_start",
        "on_train_start",
        "Callback.on_train_epoch_start",
        "on_train_epoch_start",
        *_train_batch(optimizer_step_hook, last=False),
        *_train_batch(optimizer_step_hook, last=True),
        "on_validation_model_zero_grad",
        *_eval_run("validation", 1),
        "Callback.on_train_epoch_end",
        "on_train_epoch_end",
        "Callback.on_train_end",
        "on_train_end",
        "Callback.on_fit_end",
        "on_fit_end",
        "Callback.teardown",
        "teardown",
    ]
    assert calls == expected


@pytest.mark.parametrize("stage", ["validation", "test"])
def test_evaluate_hook_order(tmp_path: Path, stage: str) -> None:
    model, callback, calls = _setup(tmp_path)
    trainer = quiet_trainer(tmp_path, callbacks=[callback], limit_val_batches=2, limit_test_batches=2)
    run = trainer.validate if stage == "validation" else trainer.test
    run(model, verbose=False)
    fn = "validate" if stage == "validation" else "test"
    loader = "val_dataloader" if stage == "validation" else "test_dataloader"
    assert calls == [
        "configure_callbacks",
        "prepare_data",
        "Callback.setup",
        "setup",
        "configure_model",
        loader,
        *_eval_run(stage, 2),
        "Callback.teardown",
        "teardown",
    ]
    assert trainer.state.fn == fn


def test_predict_hook_order(tmp_path: Path) -> None:
    model, callback, calls = _setup(tmp_path)
    quiet_trainer(tmp_path, callbacks=[callback], limit_predict_batches=1).predict(model)
    assert calls == [
        "configure_callbacks",
        "prepare_data",
        "Callback.setup",
        "setup",
        "configure_model",
        "predict_dataloader",
        "on_predict_model_eval",
        "Callback.on_predict_start",
        "on_predict_start",
        "Callback.on_predict_epoch_start",
        "on_predict_epoch_start",
        "on_before_batch_transfer",
        "transfer_batch_to_device",
        "on_after_batch_transfer",
        "Callback.on_predict_batch_start",
        "on_predict_batch_start",
        "predict_step",
        "Callback.on_predict_batch_end",
        "on_predict_batch_end",
        "Callback.on_predict_epoch_end",
        "on_predict_epoch_end",
        "Callback.on_predict_end",
        "on_predict_end",
        "Callback.teardown",
        "teardown",
    ]


def test_checkpoint_hooks_and_resume_order(tmp_path: Path) -> None:
    model, callback, calls = _setup(tmp_path)
    trainer = quiet_trainer(tmp_path, callbacks=[callback], max_epochs=1, limit_val_batches=0)
    trainer.fit(model)
    calls.clear()
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    assert calls == ["Callback.on_save_checkpoint", "on_save_checkpoint"]
    model2, callback2, calls2 = _setup(tmp_path)
    quiet_trainer(tmp_path, callbacks=[callback2], max_epochs=2, limit_val_batches=0).fit(
        model2, ckpt_path=str(tmp_path / "a.ckpt")
    )
    start = calls2.index("configure_model")
    # weights and callbacks come back before the model moves and the optimizers are configured (PL's order)
    assert calls2[start : start + 4] == [
        "configure_model",
        "on_load_checkpoint",
        "Callback.on_load_checkpoint",
        "configure_optimizers",
    ]
    assert calls2.count("Callback.on_train_epoch_start") == 1  # epoch 0 was done: only epoch 1 runs
