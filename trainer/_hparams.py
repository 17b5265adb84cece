"""``save_hyperparameters``: find a LightningModule's ``__init__`` arguments from its frames.

PyTorch Lightning reads the arguments off the calling ``__init__`` frames rather than asking the
user to list them, so ``save_hyperparameters()`` with no arguments stores everything ``__init__``
received. A subclass calling ``super().__init__(...)`` stacks several ``__init__`` frames of the
same object; the outermost (the most derived class) wins on a name clash, as in PL.
"""

import copy
import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from torch import nn

from ._errors import MisconfigurationException
from ._rank_zero import rank_zero_warn


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


def _frame_init_args(frame: FrameType) -> dict[str, Any] | None:
    """The ``__init__`` arguments a frame of a hyperparameter-holding class sees, or None for other frames.

    A frame counts when it has a ``__class__`` cell (its function calls ``super()``) naming a subclass
    of :class:`HyperparametersMixin`: PL's rule, which also means an enclosing module's ``__init__``
    (composition) contributes its arguments. ``*args`` are left out, ``**kwargs`` are spread.
    """
    local_vars = frame.f_locals
    cls = local_vars.get("__class__")
    if not isinstance(cls, type) or not issubclass(cls, HyperparametersMixin):
        return None
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return None
    names = list(params)
    self_name = names[0] if names else None
    varargs = [n for n, p in params.items() if p.kind is p.VAR_POSITIONAL]
    varkw = [n for n, p in params.items() if p.kind is p.VAR_KEYWORD]
    excluded = {self_name, *varargs, *varkw, "__class__", "frame", "frame_args"}
    args = {k: local_vars[k] for k in names if k in local_vars and k not in excluded}
    for name in varkw:
        extra = local_vars.get(name)
        if isinstance(extra, Mapping):
            args.update({k: v for k, v in extra.items() if k not in excluded})
    return args


def collect_init_args(frame: FrameType | None, owner: object = None) -> dict[str, Any]:
    """The arguments of the chain of ``__init__`` frames that ``frame`` is in (or leads up to).

    Frames before the first qualifying one are skipped (``save_hyperparameters`` called from a helper);
    the chain ends at the first frame that does not qualify. Outer frames (the most derived class,
    an enclosing module) override inner ones on a name clash, as in PL.
    """
    merged: dict[str, Any] = {}
    inside = False
    while frame is not None and frame.f_back is not None:
        args = _frame_init_args(frame)
        if args is None:
            if inside:
                break
        else:
            inside = True
            merged.update(args)
        frame = frame.f_back
    return merged


class HparamsValueError(MisconfigurationException, ValueError):
    """``save_hyperparameters`` got a value it cannot store (a ``ValueError``, as in PL)."""


class HparamsKeyError(MisconfigurationException, KeyError):
    """``save_hyperparameters("name")`` named something that is not an ``__init__`` argument."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


_PRIMITIVES = (bool, int, float, str)


def as_hparams_dict(hp: Any) -> Any:
    """A dict (``AttributeDict``) from a dict or Namespace; other mappings are kept as they are."""
    if isinstance(hp, Mapping) and not isinstance(hp, dict):
        return hp
    if not isinstance(hp, dict) and hasattr(hp, "__dict__") and type(hp).__name__ == "Namespace":
        hp = vars(hp)
    if isinstance(hp, dict):
        return AttributeDict(hp)
    if isinstance(hp, _PRIMITIVES):
        raise HparamsValueError(f"Primitives {_PRIMITIVES} are not allowed.")
    raise HparamsValueError(f"Unsupported config type of {type(hp)}.")


def select_hparams(
    init_args: dict[str, Any], args: Sequence[Any], ignore: Sequence[str] | str | None
) -> tuple[Any, str | None, list[str]]:
    """Apply ``save_hyperparameters(*args, ignore=...)``: ``(hparams, their name, the ignored names)``."""
    if ignore is None:
        ignored: list[str] = []
    elif isinstance(ignore, str):
        ignored = [ignore]
    else:
        ignored = [name for name in ignore if isinstance(name, str)]
    init_args = {k: v for k, v in init_args.items() if k not in ignored}
    if not args:
        return init_args, ("kwargs" if init_args else None), ignored
    objects = [a for a in args if not isinstance(a, str)]
    if len(objects) == 1:
        hp = objects[0]
        names = [k for k, v in init_args.items() if _equal(v, hp)]
        return hp, (names[0] if names else None), ignored
    unknown = [a for a in args if isinstance(a, str) and a not in init_args]
    if unknown:
        raise HparamsKeyError(
            f"save_hyperparameters{tuple(args)}: {unknown} are not arguments of __init__ "
            f"(its arguments are {sorted(init_args)})"
        )
    return {a: init_args[a] for a in args if isinstance(a, str)}, "kwargs", ignored


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # tensors and arrays compare element-wise
        return a is b


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
        """Store ``__init__``'s arguments (all, the named ones, or one dict/Namespace) in ``self.hparams``.

        Several calls add up (a subclass adds to what its parent saved); ``ignore`` also drops names a
        parent saved. A dataclass module saves its init fields.
        """
        self._log_hyperparams = logger
        if len(args) == 1 and not isinstance(args[0], str) and not args[0]:
            return  # an empty dict or Namespace: nothing to save
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        if dataclasses.is_dataclass(self):
            init_args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        else:
            init_args = collect_init_args(frame, self)
        hp, name, ignored = select_hparams(init_args, args, ignore)
        self._hparams_name = name
        hp = as_hparams_dict(hp)
        if isinstance(hp, dict) and isinstance(self.hparams, dict):
            self.hparams.update(hp)
        else:
            self._hparams = hp
        for key in ignored:
            self._hparams.pop(key, None)
        for key, value in self._hparams.items():
            if isinstance(value, nn.Module):
                rank_zero_warn(
                    f"Attribute {key!r} is an instance of `nn.Module` and is already saved during checkpointing. "
                    f"It is recommended to ignore them using `self.save_hyperparameters(ignore=[{key!r}])`."
                )
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
