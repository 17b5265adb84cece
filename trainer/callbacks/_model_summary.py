"""``ModelSummary``: the table of layers, parameter counts and modes PL 2.x prints when fit starts.

With ``example_input_array`` set on the module, one forward pass (eval mode, no grad) fills the
"In sizes" and "Out sizes" columns. PL 2.5+ also counts FLOPs; that needs ``torch.utils.flop_counter``,
which loads ``torch._dynamo`` (~0.8 s), too dear for a callback that is on by default, so the FLOPs
column and line are left out.
"""

import logging
import math
from typing import Any

import torch
from torch import nn

from ._base import Callback

Trainer = Any
LightningModule = Any

UNKNOWN_SIZE = "?"
PARAMETER_NUM_UNITS = [" ", "K", "M", "B", "T"]


def get_human_readable_count(number: int) -> str:
    """``123`` -> ``"123  "``, ``1234`` -> ``"1.2 K"``, ``2e6`` -> ``"2.0 M"``, as PL formats them."""
    if number < 0:
        raise ValueError(f"a parameter count cannot be negative: {number}")
    digits = int(math.floor(math.log10(number)) + 1 if number > 0 else 1)
    groups = min(math.ceil(digits / 3), len(PARAMETER_NUM_UNITS))
    scaled = number * 10 ** (-3 * (groups - 1))
    index = groups - 1
    if index < 1 or scaled >= 100:
        return f"{int(scaled):,d} {PARAMETER_NUM_UNITS[index]}"
    return f"{scaled:,.1f} {PARAMETER_NUM_UNITS[index]}"


def _sizes(value: Any) -> Any:
    if hasattr(value, "shape"):
        return list(value.shape)
    if isinstance(value, list | tuple):
        return [_sizes(v) for v in value]
    return UNKNOWN_SIZE


def _num_params(module: nn.Module) -> int:
    # lazy modules have no shape until their first forward: count them as 0, as PL does
    return sum(
        p.numel() for p in module.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)
    )


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


log = logging.getLogger("lightning_kernel.trainer.callbacks.model_summary")


class ModelSummaryTable:
    """The summary of ``model`` to ``max_depth`` levels of submodules (``-1``: all; ``0``: none).

    ``precision_bits`` sizes the parameters in MB (32 for fp32 and mixed precision, 16 for
    ``16-true``/``bf16-true``).
    """

    def __init__(self, model: nn.Module, max_depth: int = 1, precision_bits: int = 32) -> None:
        if not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(f"`max_depth` can be -1, 0 or > 0, got {max_depth!r}.")
        self._model = model
        self._max_depth = max_depth
        self._precision_bits = precision_bits
        self.layers = self._select_layers()
        self.in_sizes: list[Any] = [UNKNOWN_SIZE] * len(self.layers)
        self.out_sizes: list[Any] = [UNKNOWN_SIZE] * len(self.layers)
        if getattr(model, "example_input_array", None) is not None and self.layers:
            self._forward_example_input()

    def _select_layers(self) -> list[tuple[str, nn.Module]]:
        if self._max_depth == 0:
            return []
        if self._max_depth == 1:
            return list(self._model.named_children())
        layers = list(self._model.named_modules())[1:]
        if self._max_depth > 1:
            layers = [(name, m) for name, m in layers if name.count(".") < self._max_depth]
        return layers

    def _forward_example_input(self) -> None:
        model = self._model
        index = {id(module): i for i, (_, module) in enumerate(self.layers)}
        handles = []

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            i = index[id(module)]
            self.in_sizes[i] = _sizes(inputs[0] if len(inputs) == 1 else inputs)
            self.out_sizes[i] = _sizes(output)

        for _, module in self.layers:
            handles.append(module.register_forward_hook(hook))
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        example = _to_device(model.example_input_array, device)
        # model.train(mode) would flip every submodule: restore each one's own mode afterwards
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                if isinstance(example, list | tuple):
                    model(*example)
                elif isinstance(example, dict):
                    model(**example)
                else:
                    model(example)
        finally:
            for module, mode in modes:
                module.training = mode
            for handle in handles:
                handle.remove()

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.layers]

    @property
    def layer_types(self) -> list[str]:
        return [type(module).__name__ for _, module in self.layers]

    @property
    def param_nums(self) -> list[int]:
        return [_num_params(module) for _, module in self.layers]

    @property
    def training_modes(self) -> list[bool]:
        return [module.training for _, module in self.layers]

    @property
    def total_parameters(self) -> int:
        return _num_params(self._model)

    @property
    def trainable_parameters(self) -> int:
        return sum(
            p.numel()
            for p in self._model.parameters()
            if p.requires_grad and not isinstance(p, nn.parameter.UninitializedParameter)
        )

    @property
    def total_training_modes(self) -> dict[str, int]:
        modes = [m.training for m in self._model.modules()][1:]  # the root is not counted, as in PL
        return {"train": modes.count(True), "eval": modes.count(False)}

    @property
    def model_size(self) -> float:
        """Estimated size of the parameters in MB."""
        return self.total_parameters * self._precision_bits / 8.0 * 1e-6

    def _get_summary_data(self) -> list[tuple[str, list[str]]]:
        data = [
            (" ", [str(i) for i in range(len(self.layers))]),
            ("Name", self.layer_names),
            ("Type", self.layer_types),
            ("Params", [get_human_readable_count(n) for n in self.param_nums]),
            ("Mode", ["train" if mode else "eval" for mode in self.training_modes]),
        ]
        if getattr(self._model, "example_input_array", None) is not None:
            data.append(("In sizes", [str(s) for s in self.in_sizes]))
            data.append(("Out sizes", [str(s) for s in self.out_sizes]))
        return data

    def __str__(self) -> str:
        return format_summary_table(
            self.total_parameters,
            self.trainable_parameters,
            self.model_size,
            self.total_training_modes,
            self._get_summary_data(),
        )

    def __repr__(self) -> str:
        return str(self)


def format_summary_table(
    total_parameters: int,
    trainable_parameters: int,
    model_size: float,
    total_training_modes: dict[str, int],
    cols: list[tuple[str, list[str]]],
) -> str:
    """The PL-style text table: a row per layer, then the totals."""
    n_rows = len(cols[0][1]) if cols else 0
    widths = [max([len(header), *(len(v) for v in values)]) for header, values in cols]
    total_width = sum(widths) + 3 * (len(cols) + 1)
    lines = [" | ".join(f"{header:<{w}}" for (header, _), w in zip(cols, widths, strict=True))]
    lines.append("-" * total_width)
    for row in range(n_rows):
        lines.append(" | ".join(f"{values[row]:<{w}}" for (_, values), w in zip(cols, widths, strict=True)))
    lines.append("-" * total_width)
    totals = [
        (get_human_readable_count(trainable_parameters), "Trainable params"),
        (get_human_readable_count(total_parameters - trainable_parameters), "Non-trainable params"),
        (get_human_readable_count(total_parameters), "Total params"),
        (f"{model_size:,.3f}", "Total estimated model params size (MB)"),
        (str(total_training_modes["train"]), "Modules in train mode"),
        (str(total_training_modes["eval"]), "Modules in eval mode"),
    ]
    lines.extend(f"{value:<10}{label}" for value, label in totals)
    return "\n".join(lines)


def summarize(model: nn.Module, max_depth: int = 1, precision_bits: int = 32) -> ModelSummaryTable:
    """The summary of ``model``; ``print`` it for the table."""
    return ModelSummaryTable(model, max_depth=max_depth, precision_bits=precision_bits)


def _precision_bits(precision: Any) -> int:
    text = str(precision)
    if text.startswith("64"):
        return 64
    # mixed precision keeps fp32 weights; only "-true" half precision stores 16-bit parameters
    if text in ("16-true", "bf16-true", "16", "bf16", "half"):
        return 16
    return 32


class ModelSummary(Callback):
    """Print the summary table of the LightningModule when fit starts (on global rank zero).

    Args:
        max_depth: how deep to list submodules: 1 lists the module's children, -1 everything,
            0 turns the summary off.
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        self._max_depth = max_depth
        self._summarize_kwargs = summarize_kwargs

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        table = self._summary(trainer, pl_module)
        self.summarize(
            table._get_summary_data(),
            table.total_parameters,
            table.trainable_parameters,
            table.model_size,
            table.total_training_modes,
            **self._summarize_kwargs,
        )

    def _summary(self, trainer: Trainer, pl_module: LightningModule) -> ModelSummaryTable:
        bits = _precision_bits(getattr(trainer, "precision", "32-true"))
        return summarize(pl_module, max_depth=self._max_depth, precision_bits=bits)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        **summarize_kwargs: Any,
    ) -> None:
        """Print the table; override to send it elsewhere."""
        table = format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, summary_data
        )
        log.info("\n" + table)
