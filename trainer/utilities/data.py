"""PL's module path `utilities.data`."""

from typing import Any

from .._data import has_len, move_data_to_device
from .._logging import extract_batch_size
from .._rank_zero import rank_zero_warn

__all__ = ["extract_batch_size", "has_len", "has_len_all_ranks", "move_data_to_device"]


def has_len_all_ranks(
    dataloader: object, strategy: Any, allow_zero_length_dataloader_with_multiple_devices: bool = False
) -> bool:
    """Whether ``dataloader`` has a length on every rank (PL's helper of this name).

    A length of zero on one rank while others have batches is an error unless
    ``allow_zero_length_dataloader_with_multiple_devices``; a zero length everywhere is only warned about.
    """
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    if not has_len(dataloader):
        return False
    local = len(dataloader)  # type: ignore[arg-type]
    total = strategy.reduce(torch.tensor(local, device=strategy.root_device), reduce_op="sum")
    name = type(dataloader).__name__
    if total == 0:
        rank_zero_warn(
            f"Total length of `{name}` across ranks is zero. Please make sure this was your intention."
        )
    if total > 0 and local == 0:
        if not allow_zero_length_dataloader_with_multiple_devices:
            raise RuntimeError(
                f"`{name}` within local rank has zero length. Please make sure that it returns at least 1 batch."
            )
        rank_zero_warn(
            f"Total length of `{name}` across ranks is zero, but local rank has zero length. Please be cautious "
            "of uneven batch length."
        )
    if isinstance(dataloader, DataLoader) and isinstance(dataloader.dataset, IterableDataset):
        rank_zero_warn(
            "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading (when "
            "num_workers > 1), `__len__` could be inaccurate if each worker is not configured independently to "
            "avoid having duplicate data."
        )
    return True
