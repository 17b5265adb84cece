"""Lightning App's ``lightning.app.core.app`` module path."""

from .._app import LightningApp

__all__ = ["LightningApp"]
