"""Lightning App's ``lightning.app.utilities.packaging.build_config`` module path."""

from ..._build_config import BuildConfig

__all__ = ["BuildConfig"]
