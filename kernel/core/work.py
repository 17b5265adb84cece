"""Lightning App's ``lightning.app.core.work`` module path."""

from .._work import LightningWork

__all__ = ["LightningWork"]
