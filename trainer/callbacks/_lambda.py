"""``LambdaCallback``: a callback made of plain functions, one per hook (``on_train_start=fn``)."""

from collections.abc import Callable
from typing import Any

from ._base import Callback


class LambdaCallback(Callback):
    """Each keyword names a ``Callback`` hook and gives the function to run for it."""

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        unknown = [
            name for name in hooks if not callable(getattr(Callback, name, None)) or name.startswith("_")
        ]
        if unknown:
            raise TypeError(f"LambdaCallback got {unknown}, which are not Callback hooks")
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)  # an instance attribute: called without self, as PL's are
