"""``lightning_kernel.trainer.utilities`` and ``core.saving``: PL's helpers, behaving as PL's do."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch
from lightning_kernel.trainer.core.saving import load_hparams_from_yaml, save_hparams_to_yaml
from lightning_kernel.trainer.utilities import (
    GradClipAlgorithmType,
    grad_norm,
    is_picklable,
    measure_flops,
    rank_zero_info,
    rank_zero_only,
    rank_zero_warn,
    suggested_max_num_workers,
)
from lightning_kernel.trainer.utilities.model_summary import summarize
from lightning_kernel.trainer.utilities.seed import isolate_rng
from torch import nn


def test_grad_norm_per_parameter_and_total() -> None:
    layer = nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.tensor([[3.0, 4.0]])
    norms = grad_norm(layer, 2)
    assert set(norms) == {"grad_2.0_norm/weight", "grad_2.0_norm_total"}
    assert norms["grad_2.0_norm/weight"].item() == pytest.approx(5.0)
    assert grad_norm(layer, "inf")["grad_inf_norm_total"].item() == pytest.approx(4.0)
    assert grad_norm(nn.Linear(2, 1), 2) == {}  # no gradients yet
    with pytest.raises(ValueError, match="`norm_type` must be a positive number"):
        grad_norm(layer, 0)


def test_measure_flops_of_a_meta_model() -> None:
    with torch.device("meta"):
        model = nn.Linear(8, 4, bias=False)
        x = torch.randn(2, 8)
    assert measure_flops(model, lambda: model(x)) == 2 * 2 * 8 * 4
    # backward: the weight's gradient only (the input needs none), one more matmul
    assert measure_flops(model, lambda: model(x), lambda y: y.sum()) == 2 * 2 * 2 * 8 * 4


def test_rank_zero_helpers_follow_the_rank(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    fn = rank_zero_only(lambda: calls.append(1))
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    fn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank_zero_warn("not on rank 1")
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    fn()
    with pytest.warns(UserWarning, match="on rank 0"):
        rank_zero_warn("on rank 0")
    with caplog.at_level(logging.INFO):
        rank_zero_info("hello")
    assert calls == [1] and ("lightning_kernel.trainer.utilities.rank_zero", "hello") in {
        (r.name, r.getMessage()) for r in caplog.records
    }


def test_small_helpers() -> None:
    assert is_picklable([1, "a"]) and not is_picklable(lambda: None)
    assert GradClipAlgorithmType("norm") == "NORM" and GradClipAlgorithmType.supported_types() == [
        "value",
        "norm",
    ]
    assert suggested_max_num_workers(1) >= 1
    table = summarize(nn.Sequential(nn.Linear(2, 3)), max_depth=1)
    assert table.total_parameters == 9
    torch.manual_seed(1)
    with isolate_rng():
        torch.rand(3)
    assert torch.equal(torch.rand(1), torch.manual_seed(1) and torch.rand(1))


def test_hparams_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    save_hparams_to_yaml(path, {"lr": 0.1, "layers": [1, 2]})
    assert load_hparams_from_yaml(path) == {"lr": 0.1, "layers": [1, 2]}
    with pytest.warns(RuntimeWarning, match="Missing Tags"):
        assert load_hparams_from_yaml(tmp_path / "none.yaml") == {}
    with pytest.raises(RuntimeError, match="Missing folder"):
        save_hparams_to_yaml(tmp_path / "no" / "where.yaml", {"a": 1})
