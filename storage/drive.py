"""Lightning App's ``lightning.app.storage.drive`` module path: ``Drive`` lives in ``storage._drive``."""

from ._drive import Drive

__all__ = ["Drive"]
