"""Do something on global rank zero only: run a function, warn, or log an info line.

The rank is ``rank_zero_only.rank``, as in PyTorch Lightning: read from the launcher's environment
variables (``RANK``, then ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``), and set by the Trainer's strategy
once it knows its rank. Info and debug lines go through :mod:`logging` under this module's name, where
PL's go through ``lightning.pytorch.utilities.rank_zero``; :func:`~._log.ensure_handler` prints them
when the application configured no logging.
"""

import functools
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("lightning_kernel.trainer.utilities.rank_zero")

_F = TypeVar("_F", bound=Callable[..., Any])


def _rank_from_env() -> int:
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None:
            return int(value)
    return 0


def rank_zero_only(fn: _F, default: Any = None) -> _F:
    """``fn`` that runs on global rank zero and returns ``default`` on every other rank."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        rank = getattr(rank_zero_only, "rank", None)
        if rank is None:
            rank = rank_zero_only.rank = _rank_from_env()  # type: ignore[attr-defined]
        if rank == 0:
            return fn(*args, **kwargs)
        return default

    return wrapped  # type: ignore[return-value]  # same signature, by functools.wraps


rank_zero_only.rank = None  # type: ignore[attr-defined]  # None: not known yet, read from the environment


def _is_zero() -> bool:
    rank = getattr(rank_zero_only, "rank", None)
    if rank is None:
        rank = rank_zero_only.rank = _rank_from_env()  # type: ignore[attr-defined]
    return bool(rank == 0)


def rank_zero_warn(message: str | Warning, stacklevel: int = 4, **kwargs: Any) -> None:
    """``warnings.warn`` on rank zero; ``category=`` as for ``warnings.warn`` (default UserWarning)."""
    if _is_zero():
        warnings.warn(message, stacklevel=stacklevel, **kwargs)


def rank_zero_deprecation(message: str | Warning, stacklevel: int = 5, **kwargs: Any) -> None:
    """A ``DeprecationWarning`` on rank zero."""
    if _is_zero():
        category = kwargs.pop("category", DeprecationWarning)
        warnings.warn(message, category=category, stacklevel=stacklevel, **kwargs)


def rank_zero_info(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """``logging.info`` on rank zero, under this module's logger."""
    if _is_zero():
        log.info(*args, stacklevel=stacklevel, **kwargs)


def rank_zero_debug(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """``logging.debug`` on rank zero, under this module's logger."""
    if _is_zero():
        log.debug(*args, stacklevel=stacklevel, **kwargs)


class PossibleUserWarning(UserWarning):
    """A warning about something that may be a mistake, or may be what the user meant."""


class WarningCache(set[str]):
    """Warn or log each message once (a set of the messages already said)."""

    def warn(self, message: str, stacklevel: int = 5, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_warn(message, stacklevel=stacklevel, **kwargs)

    def deprecation(self, message: str, stacklevel: int = 6, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_deprecation(message, stacklevel=stacklevel, **kwargs)

    def info(self, message: str, stacklevel: int = 5, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_info(message, stacklevel=stacklevel, **kwargs)


__all__ = [
    "PossibleUserWarning",
    "WarningCache",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
]
