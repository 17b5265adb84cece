"""Lightning App's ``lightning.app.core.flow`` module path."""

from .._flow import LightningFlow

__all__ = ["LightningFlow"]
