"""Lightning App's ``lightning.app.storage.mount`` module path: ``Mount`` lives in ``storage._mount``."""

from ._mount import Mount

__all__ = ["Mount"]
