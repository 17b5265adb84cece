"""EarlyStopping's decision rules, value by value; the epochs at which a fit stops are tested with
the Trainer in test_callbacks_in_fit.py."""

from __future__ import annotations

import math

import pytest
import torch
from lightning_kernel.trainer._errors import MisconfigurationException
from lightning_kernel.trainer.callbacks import EarlyStopping


def _run(callback: EarlyStopping, values: list[float]) -> int | None:
    """The index of the value at which the callback says stop, or None."""
    for i, value in enumerate(values):
        stop, _ = callback._evaluate_stopping_criteria(torch.tensor(value))
        if stop:
            return i
    return None


def test_patience_counts_checks_without_improvement() -> None:
    callback = EarlyStopping("loss", patience=2)
    assert _run(callback, [1.0, 0.9, 0.95, 0.91, 0.5]) == 3
    assert callback.wait_count == 2
    assert float(callback.best_score) == pytest.approx(0.9)


def test_min_delta_ignores_small_improvements() -> None:
    assert _run(EarlyStopping("loss", patience=2, min_delta=0.1), [1.0, 0.95, 0.92, 0.5]) == 2
    assert _run(EarlyStopping("loss", patience=2, min_delta=0.01), [1.0, 0.95, 0.92, 0.5]) is None


def test_max_mode() -> None:
    assert _run(EarlyStopping("acc", patience=1, mode="max"), [0.1, 0.2, 0.15]) == 2
    assert _run(EarlyStopping("acc", patience=1, mode="max"), [0.1, 0.2, 0.3]) is None


def test_thresholds_stop_at_once() -> None:
    callback = EarlyStopping("loss", stopping_threshold=0.1, patience=100)
    assert _run(callback, [1.0, 0.5, 0.09, 0.01]) == 2
    _, reason = EarlyStopping("loss", stopping_threshold=0.1)._evaluate_stopping_criteria(torch.tensor(0.05))
    assert reason is not None and reason.startswith("Stopping threshold reached: loss = ")
    diverging = EarlyStopping("loss", divergence_threshold=5.0, patience=100)
    assert _run(diverging, [1.0, 2.0, 6.0]) == 2


def test_non_finite_stops_unless_disabled() -> None:
    assert _run(EarlyStopping("loss"), [1.0, math.nan]) == 1
    assert _run(EarlyStopping("loss"), [1.0, math.inf]) == 1
    assert _run(EarlyStopping("loss", check_finite=False, patience=3), [1.0, math.nan]) is None


def test_state_round_trip() -> None:
    callback = EarlyStopping("loss", patience=3)
    _run(callback, [1.0, 2.0, 2.0])
    restored = EarlyStopping("loss", patience=3)
    restored.load_state_dict(callback.state_dict())
    assert restored.wait_count == 2
    assert float(restored.best_score) == 1.0
    assert _run(restored, [3.0]) == 0


def test_bad_arguments() -> None:
    with pytest.raises(MisconfigurationException, match="`mode` can be min, max, got avg"):
        EarlyStopping("loss", mode="avg")
    with pytest.raises(MisconfigurationException, match="patience=-1"):
        EarlyStopping("loss", patience=-1)
    assert EarlyStopping("a").state_key != EarlyStopping("b").state_key
