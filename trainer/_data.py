"""Batches and dataloaders: moving batches to a device, counting and limiting batches, samplers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, Sampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from ._errors import MisconfigurationException
from ._rank_zero import rank_zero_info


def move_data_to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor (and every object with a ``.to``) moved to ``device``."""
    if isinstance(batch, Tensor):
        device = torch.device(device)
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, Mapping):
        moved = {k: move_data_to_device(v, device) for k, v in batch.items()}
        try:
            return type(batch)(moved)  # type: ignore[call-arg]  # dict subclasses keep their type
        except TypeError:
            return moved
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(move_data_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_data_to_device(v, device) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            f.name: move_data_to_device(getattr(batch, f.name), device) for f in dataclasses.fields(batch)
        }
        return dataclasses.replace(batch, **changes)
    to = getattr(batch, "to", None)
    if callable(to) and not isinstance(batch, torch.nn.Module):
        return to(device)
    return batch


def convert_floats(batch: Any, dtype: torch.dtype) -> Any:
    """``batch`` with floating-point tensors cast to ``dtype`` (the ``*-true`` precisions)."""
    if isinstance(batch, Tensor):
        return batch.to(dtype) if torch.is_floating_point(batch) else batch
    if isinstance(batch, Mapping):
        return {k: convert_floats(v, dtype) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(convert_floats(v, dtype) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(convert_floats(v, dtype) for v in batch)
    return batch


def has_len(loader: Any) -> bool:
    if isinstance(loader, DataLoader) and isinstance(loader.dataset, IterableDataset):
        try:
            len(loader)
        except TypeError:
            return False
        return True
    try:
        return len(loader) is not None
    except (TypeError, NotImplementedError):
        return False


def num_batches(loader: Any, limit: int | float, stage: str) -> int | float:
    """How many batches of ``loader`` a loop runs: its length cut by ``limit_{stage}_batches``."""
    length: int | float = len(loader) if has_len(loader) else float("inf")
    if isinstance(limit, int):
        return min(length, limit)
    if length == float("inf"):
        if limit not in (0.0, 1.0):
            raise MisconfigurationException(
                f"limit_{stage}_batches={limit} is a fraction, but the {stage} dataloader has no length; pass "
                "an int (a number of batches) instead"
            )
        return length if limit == 1.0 else 0
    batches = int(length * limit)
    if limit > 0 and batches == 0 and length > 0:
        min_fraction = 1.0 / length
        raise MisconfigurationException(
            f"You requested to check {limit} of the {stage} dataloader but {limit} * {length} < 1. Please "
            f"increase the `limit_{stage}_batches` argument. Try at least `limit_{stage}_batches={min_fraction}`"
        )
    return batches


def parse_limit(value: int | float | None, name: str) -> int | float:
    """PL's rule: ``1.0`` is "all", a float in [0, 1] a fraction, an int a count.

    An explicit ``1`` or ``1.0`` is told (logged) as PL does, since the two mean different things.
    """
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MisconfigurationException(
            f"You have passed invalid value {value!r} for {name}, it has to be in [0.0, 1.0] or an int."
        )
    if isinstance(value, int) and value == 1:
        what = {
            "limit_train_batches": "1 batch per epoch will be used.",
            "val_check_interval": "validation will run after every batch.",
        }.get(name, "1 batch will be used.")
        rank_zero_info(f"`Trainer({name}=1)` was configured so {what}")
    elif isinstance(value, float) and value == 1.0:
        what = {
            "limit_train_batches": "100% of the batches per epoch will be used.",
            "val_check_interval": "validation will run at the end of the training epoch.",
        }.get(name, "100% of the batches will be used.")
        rank_zero_info(f"`Trainer({name}=1.0)` was configured so {what}.")
    if 0 <= value <= 1:
        return value
    if value > 1 and value % 1.0 == 0:
        return int(value)
    raise MisconfigurationException(
        f"You have passed invalid value {value} for {name}, it has to be in [0.0, 1.0] or an int."
    )


def _rebuild(loader: DataLoader[Any], sampler: Sampler[Any]) -> DataLoader[Any]:
    """A copy of ``loader`` that draws indices from ``sampler``."""
    if type(loader) is not DataLoader:
        raise MisconfigurationException(
            f"cannot replace the sampler of a {type(loader).__name__} (a DataLoader subclass); build it with the "
            "sampler you need, or pass `use_distributed_sampler=False` to the Trainer"
        )
    batch_size = loader.batch_size
    drop_last = loader.drop_last
    if loader.batch_size is None and loader.batch_sampler is not None:
        batch_size = getattr(loader.batch_sampler, "batch_size", 1)
        drop_last = getattr(loader.batch_sampler, "drop_last", False)
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )


def _is_shuffled(loader: DataLoader[Any]) -> bool:
    sampler = loader.sampler
    return isinstance(sampler, torch.utils.data.RandomSampler)


def distributed(loader: Any, world_size: int, rank: int, training: bool, seed: int = 0) -> Any:
    """``loader`` drawing only this rank's share of the dataset (PL's ``use_distributed_sampler``)."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=training and _is_shuffled(loader),
        seed=seed,
    )
    return _rebuild(loader, sampler)


def sequential(loader: Any) -> Any:
    """``loader`` drawing its dataset in order (``overfit_batches`` trains on the same first batches every
    epoch): any other sampler is replaced by a ``SequentialSampler``."""
    if type(loader) is not DataLoader or isinstance(loader.dataset, IterableDataset):
        return loader
    if isinstance(loader.sampler, SequentialSampler):
        return loader
    return _rebuild(loader, SequentialSampler(loader.dataset))  # type: ignore[arg-type]


def set_sampler_epoch(loader: Any, epoch: int) -> None:
    """Reshuffle distributed samplers per epoch, as PL does."""
    for obj in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


def as_loader_list(loaders: Any) -> list[Any]:
    """Eval dataloaders: one loader or a sequence/dict of them, as a list."""
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return list(loaders)
    return [loaders]


def check_iterable(loader: Any, source: str) -> None:
    if not isinstance(loader, Iterable):
        raise MisconfigurationException(
            f"{source} returned a {type(loader).__name__}, which cannot be iterated; return a "
            "torch.utils.data.DataLoader (or any iterable of batches)"
        )


def ceil_div(a: int | float, b: int) -> int | float:
    return a if a == float("inf") else math.ceil(a / b)


def iterate(loader: Any, limit: int | float, skip: int = 0) -> Iterator[tuple[int, Any, bool]]:
    """``(batch_idx, batch, is_last)`` for up to ``limit`` batches; a one-batch look-ahead when the
    loader has no length, so ``is_last`` is right for iterable datasets too."""
    iterator = iter(loader)
    for _ in range(skip):
        next(iterator, None)
    idx = skip
    if limit != float("inf"):
        last = int(limit) - 1
        while idx <= last:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            yield idx, batch, idx == last
            idx += 1
        return
    sentinel = object()
    batch = next(iterator, sentinel)
    while batch is not sentinel:
        following = next(iterator, sentinel)
        yield idx, batch, following is sentinel
        batch = following
        idx += 1
