"""PL's module path `utilities.seed`."""

from .._rng import isolate_rng
from .._seed import seed_everything

__all__ = ["isolate_rng", "seed_everything"]
