"""The tuner's pieces without a Trainer: batch-size search steps, OOM detection, the lr suggestion,
and where tunable attributes are found."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import pytest
import torch
from lightning_kernel.trainer.tuner._attr import (
    TunerAttributeError,
    lightning_getattr,
    lightning_hasattr,
    lightning_setattr,
)
from lightning_kernel.trainer.tuner._batch_size import BatchSizeSearch
from lightning_kernel.trainer.tuner._lr_finder import _ExponentialLR, _LinearLR, _LRFinder
from lightning_kernel.trainer.tuner._trials import is_oom_error


class Holder:
    def __init__(self, batch_size: int = 2) -> None:
        self.batch_size = batch_size
        self.hparams: dict[str, Any] = {}


def _search(
    limit: int, length: int | None = None, max_val: int | None = None
) -> tuple[Holder, BatchSizeSearch]:
    holder = Holder()

    def trial() -> None:
        if holder.batch_size > limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return holder, BatchSizeSearch(holder, None, "batch_size", trial, lambda: length, max_val=max_val)


def test_power_doubles_until_oom_then_halves() -> None:
    holder, search = _search(limit=40)
    assert search.power(max_trials=25) == 32
    assert holder.batch_size == 32
    assert search.trials == [(2, True), (4, True), (8, True), (16, True), (32, True), (64, False)]


def test_power_stops_at_max_trials_and_dataset_length() -> None:
    _, search = _search(limit=10**9)
    # three trials (2, 4, 8) and no doubling after the last: an untried size proves nothing (PL's count)
    assert search.power(max_trials=3) == 8
    assert [size for size, _ in search.trials] == [2, 4, 8]
    _, bounded = _search(limit=10**9, length=20)
    assert bounded.power(max_trials=25) == 32
    assert bounded.trials[-1] == (32, True)
    _, capped = _search(limit=10**9, max_val=24)
    assert capped.power(max_trials=25) == 24


def test_binsearch_finds_the_limit_then_takes_the_margin_off() -> None:
    holder, search = _search(limit=40)
    assert search.binsearch(max_trials=25, margin=0.0) == 40
    assert holder.batch_size == 40
    _, with_margin = _search(limit=40)
    assert with_margin.binsearch(max_trials=25, margin=0.05) == 38


def test_other_errors_propagate() -> None:
    holder = Holder()

    def trial() -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        BatchSizeSearch(holder, None, "batch_size", trial, lambda: None).power(3)


def test_oom_detection() -> None:
    assert is_oom_error(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert is_oom_error(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried"))
    assert is_oom_error(MemoryError())
    wrapped = ValueError("trial failed")
    wrapped.__cause__ = RuntimeError("CUDA error: out of memory")
    assert is_oom_error(wrapped)
    assert not is_oom_error(RuntimeError("out of range"))


def test_attributes_on_module_hparams_and_datamodule() -> None:
    model = Holder(batch_size=8)
    model.hparams["lr"] = 0.1
    datamodule = Holder(batch_size=16)
    assert lightning_hasattr(model, "lr") and not lightning_hasattr(model, "momentum")
    assert lightning_getattr(model, "batch_size") == 8
    assert lightning_getattr(model, "batch_size", datamodule) == 16  # the datamodule's wins, as in PL
    lightning_setattr(model, "batch_size", 4, datamodule)
    assert (model.batch_size, datamodule.batch_size) == (4, 4)
    lightning_setattr(model, "lr", 0.5)
    assert model.hparams["lr"] == 0.5
    with pytest.raises(TunerAttributeError, match="'momentum' is neither stored") as info:
        lightning_getattr(model, "momentum")
    assert isinstance(info.value, AttributeError)


def test_range_schedulers_go_from_min_to_max() -> None:
    for cls in (_ExponentialLR, _LinearLR):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=1e-4)
        for group in optimizer.param_groups:
            group["initial_lr"] = 1e-4
        scheduler = cls(optimizer, 1.0, 10)
        # the lr each of the 10 trial steps runs with, as the finder records it
        lrs = []
        for _ in range(10):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert lrs[0] == pytest.approx(1e-4)
        assert lrs[-1] == pytest.approx(1.0)
        assert all(b > a for a, b in itertools.pairwise(lrs[1:]))


def test_suggestion_is_the_steepest_descent(caplog: pytest.LogCaptureFixture) -> None:
    finder = _LRFinder("exponential", 1e-6, 1.0, 100)
    lrs = [1e-6 * (1e6 ** (i / 99)) for i in range(100)]
    # a loss that falls fastest (per decade of lr) at index 60, then diverges
    losses = [2.0 - math.tanh((i - 60) / 6) if i < 85 else float("nan") for i in range(100)]
    finder.results = {"lr": lrs, "loss": losses}
    suggestion = finder.suggestion()
    assert finder._optimal_idx == 60
    assert suggestion == lrs[60]
    # a linear range is differentiated against the lr itself: uneven steps move the answer
    linear = _LRFinder("linear", 0.0, 1.0, 100)
    linear_lrs = [(i / 99) ** 2 for i in range(100)]
    linear.results = {"lr": linear_lrs, "loss": [1.0 - lr for lr in linear_lrs]}
    linear.suggestion()
    index_only = int(torch.argmin(torch.gradient(torch.tensor(linear.results["loss"][10:-1]))[0])) + 10
    assert linear._optimal_idx != index_only
    finder.results = {"lr": lrs[:5], "loss": losses[:5]}
    with caplog.at_level(logging.ERROR):
        assert finder.suggestion() is None
    assert "Failed to compute suggestion for learning rate because there are not enough points" in caplog.text
