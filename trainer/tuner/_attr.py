"""Find and set a tunable attribute (``lr``, ``batch_size``) wherever PL looks for it.

PL's ``lightning_getattr``/``lightning_setattr`` look on the module, in ``module.hparams``, on the
datamodule and in ``datamodule.hparams``; setting writes every place that has it, so a model that
keeps ``self.batch_size`` and ``self.hparams.batch_size`` stays consistent.
"""

from __future__ import annotations

from typing import Any

from .._errors import MisconfigurationException


class TunerAttributeError(MisconfigurationException, AttributeError):
    """The attribute to tune is nowhere to be found. An ``AttributeError`` too, as in PL."""


def _holders(model: Any, attribute: str, datamodule: Any = None) -> list[Any]:
    holders: list[Any] = []
    if hasattr(model, attribute):
        holders.append(model)
    hparams = getattr(model, "hparams", None)
    if isinstance(hparams, dict) and attribute in hparams:
        holders.append(hparams)
    if datamodule is None:
        trainer = getattr(model, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    if datamodule is not None:
        if hasattr(datamodule, attribute):
            holders.append(datamodule)
        dm_hparams = getattr(datamodule, "hparams", None)
        if isinstance(dm_hparams, dict) and attribute in dm_hparams:
            holders.append(dm_hparams)
    return holders


def lightning_hasattr(model: Any, attribute: str, datamodule: Any = None) -> bool:
    return bool(_holders(model, attribute, datamodule))


def lightning_getattr(model: Any, attribute: str, datamodule: Any = None) -> Any:
    """The value of ``attribute``; the datamodule's wins over the model's, as in PL."""
    holders = _holders(model, attribute, datamodule)
    if not holders:
        raise TunerAttributeError(
            f"{attribute!r} is neither stored in the model namespace nor the `hparams` namespace/dict, nor "
            "the datamodule."
        )
    holder = holders[-1]
    return holder[attribute] if isinstance(holder, dict) else getattr(holder, attribute)


def lightning_setattr(model: Any, attribute: str, value: Any, datamodule: Any = None) -> None:
    """Set ``attribute`` everywhere it is found."""
    holders = _holders(model, attribute, datamodule)
    if not holders:
        raise TunerAttributeError(
            f"{attribute!r} is neither stored in the model namespace nor the `hparams` namespace/dict, nor "
            "the datamodule."
        )
    for holder in holders:
        if isinstance(holder, dict):
            holder[attribute] = value
        else:
            setattr(holder, attribute, value)
