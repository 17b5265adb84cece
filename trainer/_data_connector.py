"""Which dataloaders a stage uses (explicit > datamodule > module) and how they are adapted:
no shuffling for ``overfit_batches``, a ``DistributedSampler`` under DDP, several train loaders
combined PL's "max_size_cycle" way."""

import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import _data
from ._datamodule import LightningDataModule
from ._errors import MisconfigurationException
from ._hooks import is_overridden

if TYPE_CHECKING:
    from ._trainer import Trainer

_HOOK_NAMES = {
    "train": "train_dataloader",
    "val": "val_dataloader",
    "test": "test_dataloader",
    "predict": "predict_dataloader",
}


class CombinedLoader:
    """Several train loaders stepped together; shorter ones restart until the longest ends."""

    def __init__(self, loaders: Mapping[str, Any] | list[Any]) -> None:
        self.loaders = loaders
        self.iterables = loaders  # PL's name
        self._items = list(loaders.items()) if isinstance(loaders, Mapping) else list(enumerate(loaders))

    def __len__(self) -> int:
        return max(len(dl) for _, dl in self._items)

    def __iter__(self) -> Iterator[Any]:
        iterators = {k: iter(dl) for k, dl in self._items}
        exhausted = {k: False for k, _ in self._items}
        while True:
            batch: dict[Any, Any] = {}
            for key, loader in self._items:
                try:
                    batch[key] = next(iterators[key])
                except StopIteration:
                    exhausted[key] = True
                    if all(exhausted.values()):
                        return
                    iterators[key] = iter(loader)
                    batch[key] = next(iterators[key])
            if all(exhausted.values()):
                return
            yield batch if isinstance(self.loaders, Mapping) else [batch[i] for i in range(len(self._items))]


class DataConnector:
    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.explicit: dict[str, Any] = {}
        self.datamodule: LightningDataModule | None = None
        self._val_loaded_epoch = -1
        self.sources: dict[str, Any] = {}
        """The loaders of each kind in the shape the user gave them (a list stays a list), adapted."""

    def attach(self, datamodule: LightningDataModule | None, **loaders: Any) -> None:
        self.explicit = {k: v for k, v in loaders.items() if v is not None}
        self.datamodule = datamodule
        if datamodule is not None:
            datamodule.trainer = self.trainer
        self._val_loaded_epoch = -1

    def _owner(self, kind: str) -> Any:
        name = _HOOK_NAMES[kind]
        if kind in self.explicit:
            return None
        if self.datamodule is not None and is_overridden(name, self.datamodule, LightningDataModule):
            return self.datamodule
        module = self.trainer._module
        from ._module import LightningModule

        if module is not None and is_overridden(name, module, LightningModule):
            return module
        return None

    def is_defined(self, kind: str) -> bool:
        return kind in self.explicit or self._owner(kind) is not None

    def reload_val(self) -> bool:
        every = self.trainer.reload_dataloaders_every_n_epochs
        return every > 0 and self.trainer.current_epoch - self._val_loaded_epoch >= every

    def request(self, kind: str) -> Any:
        trainer = self.trainer
        name = _HOOK_NAMES[kind]
        if kind in self.explicit:
            loaders = self.explicit[kind]
        else:
            owner = self._owner(kind)
            if owner is None:
                raise MisconfigurationException(
                    f"No `{name}()` method defined and no {kind} dataloaders passed: define `{name}` in the "
                    f"LightningModule or the datamodule, or pass them to the Trainer call"
                )
            loaders = trainer._call_module_hook(name) if owner is trainer._module else getattr(owner, name)()
        if kind == "val":
            self._val_loaded_epoch = trainer.current_epoch
        shaped: Any
        if isinstance(loaders, Mapping):
            shaped = {k: self._adapt(v, kind) for k, v in loaders.items()}
        elif isinstance(loaders, (list, tuple)):
            shaped = [self._adapt(v, kind) for v in loaders]
        else:
            shaped = self._adapt(loaders, kind)
        self.sources[kind] = shaped
        if kind == "train":
            if isinstance(shaped, list) and len(shaped) == 1:
                return shaped[0]  # one loader in a list runs as that loader: no combining per batch
            return CombinedLoader(shaped) if isinstance(shaped, (dict, list)) else shaped
        if isinstance(shaped, dict):
            return list(shaped.values())
        return shaped

    def shutdown_workers(self) -> None:
        """Stop the worker processes of persistent-worker loaders (PL does at the end of each loop).

        Left alive, their processes keep the interpreter from exiting until the loader is collected
        (tens of seconds), and a Work's process from ending.
        """
        for shaped in self.sources.values():
            loaders = (
                shaped.values()
                if isinstance(shaped, dict)
                else shaped
                if isinstance(shaped, list)
                else [shaped]
            )
            for loader in loaders:
                iterator = getattr(loader, "_iterator", None)
                stop = getattr(iterator, "_shutdown_workers", None)
                if callable(stop):
                    stop()
                    loader._iterator = None

    def _adapt(self, loader: Any, kind: str) -> Any:
        trainer = self.trainer
        _data.check_iterable(loader, f"{_HOOK_NAMES[kind]}()")
        fitting = trainer.state.fn == "fit"
        if trainer.overfit_batches > 0 and (kind == "train" or (kind == "val" and fitting)):
            # the same first batches every epoch: any sampler but a sequential one is replaced (PL's rule)
            sequential = _data.sequential(loader)
            if sequential is not loader:
                warnings.warn(
                    f"You requested to overfit but enabled {kind} dataloader shuffling. We are turning off the "
                    f"{kind} dataloader shuffling for you.",
                    UserWarning,
                    stacklevel=2,
                )
            loader = sequential
        strategy = trainer.strategy
        if strategy.distributed and strategy.world_size > 1 and trainer.use_distributed_sampler:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            loader = _data.distributed(
                loader, strategy.world_size, strategy.global_rank, kind == "train", seed
            )
        return loader

    def prepare_data(self) -> None:
        from ._module import LightningModule

        trainer = self.trainer
        owners: list[tuple[Any, type]] = [
            (self.datamodule, LightningDataModule),
            (trainer._module, LightningModule),
        ]
        for obj, base in owners:
            if obj is None or not is_overridden("prepare_data", obj, base):
                continue
            per_node = getattr(obj, "prepare_data_per_node", True)
            if (per_node and trainer.local_rank == 0) or (not per_node and trainer.is_global_zero):
                if obj is trainer._module:
                    trainer._call_module_hook("prepare_data")
                else:
                    trainer._call_datamodule_hook("prepare_data")
        trainer.strategy.barrier("prepare_data")
