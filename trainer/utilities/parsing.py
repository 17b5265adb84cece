"""PL's module path `utilities.parsing`."""

import pickle
from typing import Any

from .._hparams import AttributeDict, collect_init_args
from ..tuner._attr import lightning_getattr, lightning_hasattr, lightning_setattr


def is_picklable(obj: object) -> bool:
    """Whether ``pickle.dumps(obj)`` works."""
    try:
        pickle.dumps(obj)
        return True
    except (pickle.PicklingError, AttributeError, TypeError):
        return False


def save_hyperparameters(obj: Any, *args: Any, **kwargs: Any) -> None:
    """``obj.save_hyperparameters(*args, ...)``, for objects called the functional way."""
    obj.save_hyperparameters(*args, **kwargs)


__all__ = [
    "AttributeDict",
    "collect_init_args",
    "is_picklable",
    "lightning_getattr",
    "lightning_hasattr",
    "lightning_setattr",
    "save_hyperparameters",
]
