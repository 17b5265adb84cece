"""Ready-made Works, as Lightning App's ``lightning.app.components``: scripts run as Works, the
serving helpers, and the multi-node components. Importing this package imports neither gradio,
streamlit nor torch (nor pydantic: ``Image``, ``Number``, ``Text`` and ``Category``, the request
types of ``PythonServer``, are made on first use, as in ``components.serve``)."""

from typing import Any

from ._gradio import ServeGradio
from ._multi_node import MultiNode
from ._multi_node_script import LightningTrainerScript, PyTorchLightningScriptRunner
from ._multi_node_spawn import PyTorchSpawnMultiNode
from ._multi_node_trainer import FabricMultiNode, LightningTrainerMultiNode
from ._popen import PopenPythonScript
from ._python_server import TYPES, PythonServer, serve_type
from ._streamlit import ServeStreamlit
from ._tracer import TracerPythonScript


def __getattr__(name: str) -> Any:
    if name in TYPES:
        return serve_type(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Category",
    "FabricMultiNode",
    "Image",
    "LightningTrainerMultiNode",
    "LightningTrainerScript",
    "MultiNode",
    "Number",
    "PopenPythonScript",
    "PyTorchLightningScriptRunner",
    "PyTorchSpawnMultiNode",
    "PythonServer",
    "ServeGradio",
    "ServeStreamlit",
    "Text",
    "TracerPythonScript",
]
