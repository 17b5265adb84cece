"""PL's module path `utilities.memory`."""

import gc

import torch

from ..tuner._trials import is_oom_error


def garbage_collection_cuda() -> None:
    """Collect garbage, then give CUDA's cached blocks back (a no-op without CUDA)."""
    gc.collect()
    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except RuntimeError as err:  # empty_cache can fail when memory is exhausted: ignore that case
            if not is_oom_error(err):
                raise


__all__ = ["garbage_collection_cuda", "is_oom_error"]
