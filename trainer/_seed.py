"""``seed_everything``: one seed for Python, NumPy and torch (and, by environment, for DDP workers)."""

import logging
import os
import random
import warnings

import torch

from ._log import ensure_handler

log = logging.getLogger("lightning_kernel.trainer.utilities.seed")

_MAX_SEED = 2**32 - 1
_MIN_SEED = 0


def seed_everything(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed every generator; ``seed=None`` takes ``PL_GLOBAL_SEED`` or draws one. Returns the seed."""
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is None:
            seed = random.randint(_MIN_SEED, _MAX_SEED)
            warnings.warn(f"No seed found, seed set to {seed}", UserWarning, stacklevel=2)
        else:
            try:
                seed = int(env_seed)
            except ValueError:
                seed = random.randint(_MIN_SEED, _MAX_SEED)
                warnings.warn(
                    f"Invalid seed found: {env_seed!r}, seed set to {seed}", UserWarning, stacklevel=2
                )
    elif not isinstance(seed, int):
        seed = int(seed)
    if not (_MIN_SEED <= seed <= _MAX_SEED):
        new_seed = random.randint(_MIN_SEED, _MAX_SEED)
        warnings.warn(
            f"{seed} is not in bounds, numpy accepts from {_MIN_SEED} to {_MAX_SEED}; seed set to {new_seed}",
            UserWarning,
            stacklevel=2,
        )
        seed = new_seed
    if verbose:
        ensure_handler()
        log.info(f"Seed set to {seed}")
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    os.environ["PL_SEED_WORKERS"] = str(int(workers))
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:  # numpy is optional
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def reset_seed() -> None:
    """Seed again from ``PL_GLOBAL_SEED`` (what a spawned DDP worker does)."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is not None:
        seed_everything(int(seed), workers=bool(int(os.environ.get("PL_SEED_WORKERS", "0"))), verbose=False)
