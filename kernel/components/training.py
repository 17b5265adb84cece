"""Lightning App's ``lightning.app.components.training`` module path: a Trainer script on many nodes."""

from ._multi_node_script import LightningTrainerScript, PyTorchLightningScriptRunner

__all__ = ["LightningTrainerScript", "PyTorchLightningScriptRunner"]
