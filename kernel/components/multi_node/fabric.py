"""Lightning App's ``lightning.app.components.multi_node.fabric`` module path."""

from .._multi_node_trainer import FabricMultiNode

__all__ = ["FabricMultiNode"]
