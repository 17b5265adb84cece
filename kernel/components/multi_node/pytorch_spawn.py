"""Lightning App's ``lightning.app.components.multi_node.pytorch_spawn`` module path."""

from .._multi_node_spawn import PyTorchSpawnMultiNode

__all__ = ["PyTorchSpawnMultiNode"]
