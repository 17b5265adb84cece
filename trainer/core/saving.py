"""PL's module path `core.saving`: hyper-parameters as YAML files, and the checkpoint keys.

``use_omegaconf`` is accepted for PL's signature; the files are plain YAML either way (OmegaConf
containers are converted to dicts first, when omegaconf is installed).
"""

import os
import warnings
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from .._module import LightningModule
from ..loggers._base import load_hparams_from_yaml as _load
from ..loggers._base import save_hparams_to_yaml as _save

CHECKPOINT_PAST_HPARAMS_KEYS = ("hparams", "module_arguments")


def load_hparams_from_yaml(config_yaml: str | os.PathLike[str], use_omegaconf: bool = True) -> dict[str, Any]:
    """The hyper-parameters in ``config_yaml`` (any fsspec URL); ``{}`` with a warning when it is missing."""
    path = os.fspath(config_yaml)
    from .._fs import filesystem

    fs, inner = filesystem(path)
    if not fs.exists(inner):
        warnings.warn(f"Missing Tags: {path}.", RuntimeWarning, stacklevel=2)
        return {}
    return _load(path)


def save_hparams_to_yaml(
    config_yaml: str | os.PathLike[str], hparams: Mapping[str, Any] | Namespace, use_omegaconf: bool = True
) -> None:
    """Write ``hparams`` to ``config_yaml`` (the folder must exist, as in PL) as plain YAML."""
    path = os.fspath(config_yaml)
    from .._fs import filesystem

    fs, inner = filesystem(path)
    parent = os.path.dirname(inner)
    if parent and not fs.isdir(parent):
        raise RuntimeError(f"Missing folder: {os.path.dirname(path)}.")
    to_container = getattr(type(hparams), "__module__", "").startswith("omegaconf")
    if to_container:
        from omegaconf import OmegaConf

        hparams = OmegaConf.to_container(hparams, resolve=True)
    _save(path, hparams)


__all__ = [
    "CHECKPOINT_PAST_HPARAMS_KEYS",
    "LightningModule",
    "load_hparams_from_yaml",
    "save_hparams_to_yaml",
]
