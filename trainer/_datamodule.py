"""``LightningDataModule``: the data of a project in one place (prepare, split, dataloaders)."""

import os
from collections.abc import Mapping, Sized
from typing import TYPE_CHECKING, Any

from ._errors import MisconfigurationException
from ._hparams import HyperparametersMixin

if TYPE_CHECKING:
    from ._trainer import Trainer


class LightningDataModule(HyperparametersMixin):
    """Override ``prepare_data`` (download, once per node), ``setup(stage)`` (split, on every process)
    and the ``*_dataloader`` methods; pass it as ``trainer.fit(model, datamodule=dm)``."""

    CHECKPOINT_HYPER_PARAMS_KEY = "datamodule_hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "datamodule_hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "datamodule_hparams_type"

    name: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None
        self.prepare_data_per_node = True

    def prepare_data(self) -> None: ...
    def setup(self, stage: str) -> None: ...
    def teardown(self, stage: str) -> None: ...

    def train_dataloader(self) -> Any:
        raise MisconfigurationException(f"`train_dataloader` must be implemented in {type(self).__name__}")

    def val_dataloader(self) -> Any:
        raise MisconfigurationException(f"`val_dataloader` must be implemented in {type(self).__name__}")

    def test_dataloader(self) -> Any:
        raise MisconfigurationException(f"`test_dataloader` must be implemented in {type(self).__name__}")

    def predict_dataloader(self) -> Any:
        raise MisconfigurationException(f"`predict_dataloader` must be implemented in {type(self).__name__}")

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        from ._data import move_data_to_device

        return move_data_to_device(batch, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def on_exception(self, exception: BaseException) -> None:
        pass

    def __str__(self) -> str:
        """The size of each stage's dataset, PL's way: ``{Train dataloader: size=64}`` per line."""
        lines = []
        for label, method in (
            ("Train dataloader", "train_dataloader"),
            ("Validation dataloader", "val_dataloader"),
            ("Test dataloader", "test_dataloader"),
            ("Predict dataloader", "predict_dataloader"),
        ):
            try:
                loaders = getattr(self, method)()
            except Exception:  # not defined, or not ready before setup(): shown as None
                lines.append(f"{{{label}: None}}")
                continue
            if isinstance(loaders, Mapping):
                loaders = list(loaders.values())
            if isinstance(loaders, (list, tuple)):
                shown = " ; ".join(f"{i}. size={_dataset_size(dl)}" for i, dl in enumerate(loaders, start=1))
            else:
                shown = f"size={_dataset_size(loaders)}"
            lines.append(f"{{{label}: {shown}}}")
        return os.linesep.join(lines)

    @classmethod
    def from_datasets(
        cls,
        train_dataset: Any = None,
        val_dataset: Any = None,
        test_dataset: Any = None,
        predict_dataset: Any = None,
        batch_size: int = 1,
        num_workers: int = 0,
        **datamodule_kwargs: Any,
    ) -> "LightningDataModule":
        """A datamodule of ``cls`` whose dataloaders wrap the given datasets (or lists/dicts of them).

        Dataloaders get ``batch_size``, ``num_workers`` and ``pin_memory=True``; the train ones shuffle
        (unless iterable). ``datamodule_kwargs`` go to ``cls(...)``, and so do ``batch_size`` and
        ``num_workers`` when its ``__init__`` takes them.
        """
        import inspect

        from torch.utils.data import DataLoader, Dataset, IterableDataset

        def wrap(data: Any, shuffle: bool) -> Any:
            if isinstance(data, Dataset):
                return DataLoader(
                    data,
                    batch_size=batch_size,
                    shuffle=shuffle and not isinstance(data, IterableDataset),
                    num_workers=num_workers,
                    pin_memory=True,
                )
            if isinstance(data, Mapping):
                return {k: wrap(v, shuffle) for k, v in data.items()}
            if isinstance(data, (list, tuple)):
                return type(data)(wrap(v, shuffle) for v in data)
            return data

        parameters = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        special = {
            k: v
            for k, v in (("batch_size", batch_size), ("num_workers", num_workers))
            if takes_any or k in parameters
        }
        datamodule = cls(**datamodule_kwargs, **special)
        for kind, data in (
            ("train", train_dataset),
            ("val", val_dataset),
            ("test", test_dataset),
            ("predict", predict_dataset),
        ):
            if data is not None:
                # bound to these datasets; the instance attribute stands in for the method
                setattr(
                    datamodule, f"{kind}_dataloader", lambda d=data, k=kind: wrap(d, shuffle=k == "train")
                )
        return datamodule

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path: str, map_location: Any = None, hparams_file: str | None = None, **kwargs: Any
    ) -> Any:
        from ._restore import load_datamodule_from_checkpoint

        return load_datamodule_from_checkpoint(cls, checkpoint_path, map_location, kwargs)


def _dataset_size(loader: Any) -> str:
    dataset = getattr(loader, "dataset", None)
    return str(len(dataset)) if isinstance(dataset, Sized) else "NA"
