"""Lightning App's ``lightning.app.components.multi_node.trainer`` module path."""

from .._multi_node_trainer import LightningTrainerMultiNode

__all__ = ["LightningTrainerMultiNode"]
