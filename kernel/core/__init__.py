"""Lightning App's ``lightning.app.core`` module path: the App, Flow and Work classes."""

from .._app import LightningApp
from .._flow import LightningFlow
from .._work import LightningWork

__all__ = ["LightningApp", "LightningFlow", "LightningWork"]
