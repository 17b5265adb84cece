"""PL names that ``lightning_kernel.trainer`` deliberately does not offer, and why.

A package's ``__getattr__`` made here turns ``from lightning_kernel.trainer.callbacks import
ModelPruning`` into an ``ImportError`` that says the name is left out on purpose and what to use,
instead of Python's bare "cannot import name".
"""

from collections.abc import Callable, Mapping
from typing import Any


class NotOfferedError(ImportError):
    """A PyTorch Lightning name this Trainer leaves out on purpose.

    An ImportError, so that ``from x import Name`` says why; ``hasattr(x, Name)`` therefore raises it too
    (an AttributeError cannot also be an ImportError: their layouts differ), which code probing for
    optional PL features with ``try: from ... import`` handles as a missing feature.
    """


def not_offered(package: str, reasons: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that raises :class:`NotOfferedError` for the names in ``reasons``."""

    def __getattr__(name: str) -> Any:
        reason = reasons.get(name)
        if reason is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        raise NotOfferedError(
            f"{package}.{name} is not offered by lightning_kernel.trainer: {reason}", name=name, path=None
        )

    return __getattr__
