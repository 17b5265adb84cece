"""``RichModelSummary``: the model summary as a rich table (``rich`` must be installed)."""

import logging
from typing import Any

from ._model_summary import ModelSummary, get_human_readable_count

log = logging.getLogger("lightning_kernel.trainer.callbacks.rich_model_summary")


class RichModelSummary(ModelSummary):
    """``ModelSummary`` drawn with rich: ``header_style`` and the other ``rich.table.Table`` options apply."""

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        import rich  # noqa: F401  (fail here, where the callback is made, if rich is missing)

        super().__init__(max_depth, **summarize_kwargs)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console
        from rich.table import Table

        console = get_console()
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in summary_data:
            table.add_column(name, justify="right" if name in ("Params", "In sizes", "Out sizes") else "left")
        for row in zip(*(column for _, column in summary_data), strict=False):
            table.add_row(*row)
        console.print(table)
        lines = [
            f"Trainable params: {get_human_readable_count(trainable_parameters)}",
            f"Non-trainable params: {get_human_readable_count(total_parameters - trainable_parameters)}",
            f"Total params: {get_human_readable_count(total_parameters)}",
            f"Total estimated model params size (MB): {round(model_size)}",
            f"Modules in train mode: {total_training_modes.get('train', 0)}",
            f"Modules in eval mode: {total_training_modes.get('eval', 0)}",
        ]
        console.print("\n".join(lines))
