"""``save_hyperparameters``: find a LightningModule's ``__init__`` arguments from its frames.

PyTorch Lightning reads the arguments off the calling ``__init__`` frames rather than asking the
user to list them, so ``save_hyperparameters()`` with no arguments stores everything ``__init__``
received. A subclass calling ``super().__init__(...)`` stacks several ``__init__`` frames of the
same object; the outermost (the most derived class) wins on a name clash, as in PL.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any


class AttributeDict(dict[str, Any]):
    """A dict whose keys read as attributes: ``model.hparams.lr``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(f"'AttributeDict' object has no attribute {key!r}") from err

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __repr__(self) -> str:
        if not self:
            return ""
        width = max(len(str(k)) for k in self)
        return "\n".join(f'"{k}":{" " * (width - len(str(k)) + 1)}{v}' for k, v in sorted(self.items()))


def _init_frame_args(frame: FrameType, owner: object) -> dict[str, Any] | None:
    """The arguments of ``frame`` if it is an ``__init__`` call on ``owner``, else None."""
    if frame.f_code.co_name != "__init__":
        return None
    info = inspect.getargvalues(frame)
    if not info.args or frame.f_locals.get(info.args[0]) is not owner:
        return None
    args: dict[str, Any] = {name: info.locals[name] for name in info.args[1:] if name in info.locals}
    if info.varargs and info.locals.get(info.varargs):
        args[info.varargs] = info.locals[info.varargs]
    if info.keywords:
        args.update(info.locals.get(info.keywords) or {})
    return args


def collect_init_args(frame: FrameType | None, owner: object) -> dict[str, Any]:
    """Merge the arguments of every ``__init__`` frame of ``owner``, starting at ``frame``."""
    chain: list[dict[str, Any]] = []
    while frame is not None:
        args = _init_frame_args(frame, owner)
        if args is None:
            break
        chain.append(args)
        frame = frame.f_back
    merged: dict[str, Any] = {}
    for args in chain:  # innermost first, so the most derived __init__ overrides
        merged.update(args)
    return merged


def select_hparams(
    init_args: dict[str, Any], args: Sequence[Any], ignore: Sequence[str] | str | None
) -> tuple[dict[str, Any], str | None]:
    """Apply ``save_hyperparameters(*args, ignore=...)``; return the hparams and their name."""
    ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
    if len(args) == 1 and not isinstance(args[0], str):
        obj = args[0]
        if isinstance(obj, Mapping):
            return dict(obj), None
        if hasattr(obj, "__dict__"):  # argparse.Namespace and friends
            return dict(vars(obj)), None
        raise ValueError(
            f"save_hyperparameters() takes argument names, a dict or a Namespace; got a {type(obj).__name__}"
        )
    if args:
        unknown = [a for a in args if a not in init_args]
        if unknown:
            raise ValueError(
                f"save_hyperparameters{tuple(args)}: {unknown} are not arguments of __init__ "
                f"(its arguments are {sorted(init_args)})"
            )
        selected = {name: init_args[name] for name in args}
    else:
        selected = dict(init_args)
    return {k: v for k, v in selected.items() if k not in ignored}, "kwargs" if not args else None


def snapshot(hparams: Mapping[str, Any]) -> AttributeDict:
    """A deep copy that later edits of the live hparams do not reach (``hparams_initial``)."""
    try:
        return AttributeDict(copy.deepcopy(dict(hparams)))
    except Exception:  # some objects (open files, locks) refuse deepcopy; keep the references
        return AttributeDict(dict(hparams))


class HyperparametersMixin:
    """``save_hyperparameters``, ``hparams`` and ``hparams_initial`` for modules and datamodules."""

    __jit_unused_properties__: list[str] = ["hparams", "hparams_initial"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log_hyperparams = False

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Sequence[str] | str | None = None,
        frame: FrameType | None = None,
        logger: bool = True,
    ) -> None:
        """Store the ``__init__`` arguments (all, the named ones, or one dict/Namespace) in ``self.hparams``."""
        from ._errors import MisconfigurationException

        self._log_hyperparams = logger
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        init_args = collect_init_args(frame, self)
        try:
            hparams, name = select_hparams(init_args, args, ignore)
        except ValueError as exc:
            raise MisconfigurationException(f"{type(self).__name__}: {exc}") from exc
        self._hparams = AttributeDict(hparams)
        if name is not None:
            self._hparams_name = name
        self._hparams_initial = snapshot(self._hparams)

    @property
    def hparams(self) -> AttributeDict:
        if not hasattr(self, "_hparams"):
            self._hparams = AttributeDict()
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        if not hasattr(self, "_hparams_initial"):
            return AttributeDict()
        return snapshot(self._hparams_initial)


def instantiate_from_hparams(cls: type, hparams: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
    """``cls(**hparams, **overrides)``, dropping saved names ``__init__`` no longer accepts."""
    kwargs = {**hparams, **overrides}
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(**kwargs)
