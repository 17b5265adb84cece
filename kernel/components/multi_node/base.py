"""Lightning App's ``lightning.app.components.multi_node.base`` module path."""

from .._multi_node import MultiNode

__all__ = ["MultiNode"]
