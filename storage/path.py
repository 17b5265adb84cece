"""Lightning App's ``lightning.app.storage.path`` module path: ``Path`` lives in ``storage._path``."""

from ._path import Path

__all__ = ["Path"]
