"""Lightning App's ``lightning.app.components.multi_node`` module path."""

from .._multi_node import MultiNode
from .._multi_node_spawn import PyTorchSpawnMultiNode
from .._multi_node_trainer import FabricMultiNode, LightningTrainerMultiNode

__all__ = ["FabricMultiNode", "LightningTrainerMultiNode", "MultiNode", "PyTorchSpawnMultiNode"]
