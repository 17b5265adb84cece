"""Lightning App's ``lightning.app.utilities.packaging.cloud_compute`` module path."""

from ..._compute import CloudCompute

__all__ = ["CloudCompute"]
