"""ModelSummary's table: PL's parameter counts, modes, sizes and totals."""

from __future__ import annotations

import pytest
import torch
from lightning_kernel.trainer.callbacks._model_summary import get_human_readable_count, summarize
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(32, 64), nn.ReLU())
        self.head = nn.Linear(64, 2)
        self.frozen = nn.Linear(2, 2)
        for p in self.frozen.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen(self.head(self.encoder(x)))


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0, "0  "),
        (123, "123  "),
        (1234, "1.2 K"),
        (123_456, "123 K"),
        (2_000_000, "2.0 M"),
        (3 * 10**12, "3.0 T"),
    ],
)
def test_human_readable_count(number: int, text: str) -> None:
    assert get_human_readable_count(number) == text


def test_depth_one_lists_children_with_counts_and_modes() -> None:
    net = Net()
    net.frozen.eval()
    table = summarize(net, max_depth=1)
    assert table.layer_names == ["encoder", "head", "frozen"]
    assert table.layer_types == ["Sequential", "Linear", "Linear"]
    assert table.param_nums == [32 * 64 + 64, 64 * 2 + 2, 6]
    assert table.total_parameters == 2112 + 130 + 6
    assert table.trainable_parameters == 2112 + 130
    assert table.total_training_modes == {"train": 4, "eval": 1}
    lines = str(table).splitlines()
    assert lines[0].split("|")[1:] == [" Name    ", " Type       ", " Params ", " Mode "]
    assert lines[2].startswith("0 | encoder | Sequential | 2.1 K  | train")
    assert lines[4].startswith("2 | frozen  | Linear     | 6      | eval")
    assert lines[-6:] == [
        "2.2 K     Trainable params",
        "6         Non-trainable params",
        "2.2 K     Total params",
        "0.009     Total estimated model params size (MB)",
        "4         Modules in train mode",
        "1         Modules in eval mode",
    ]


def test_deeper_levels_and_off() -> None:
    assert summarize(Net(), max_depth=-1).layer_names == [
        "encoder",
        "encoder.0",
        "encoder.1",
        "head",
        "frozen",
    ]
    assert summarize(Net(), max_depth=2).layer_names == [
        "encoder",
        "encoder.0",
        "encoder.1",
        "head",
        "frozen",
    ]
    assert summarize(Net(), max_depth=0).layer_names == []
    with pytest.raises(ValueError, match="max_depth"):
        summarize(Net(), max_depth=-3)


def test_example_input_gives_sizes_and_keeps_modes() -> None:
    net = Net()
    net.encoder[1].eval()
    net.example_input_array = torch.zeros(4, 32)  # type: ignore[assignment]
    table = summarize(net)
    assert table.in_sizes == [[4, 32], [4, 64], [4, 2]]
    assert table.out_sizes == [[4, 64], [4, 2], [4, 2]]
    assert "In sizes" in str(table) and "Out sizes" in str(table)
    assert net.training and not net.encoder[1].training and net.encoder[0].training


def test_half_precision_halves_the_size() -> None:
    full = summarize(Net(), precision_bits=32).model_size
    assert summarize(Net(), precision_bits=16).model_size == pytest.approx(full / 2)
