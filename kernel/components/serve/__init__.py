"""Lightning App's ``lightning.app.components.serve`` module path: the gradio and streamlit Works,
``PythonServer``, and its request types ``Image``, ``Number``, ``Text``, ``Category`` (pydantic models,
made on first use)."""

from typing import Any

from .._gradio import ServeGradio
from .._python_server import TYPES, PythonServer, serve_type
from .._streamlit import ServeStreamlit


def __getattr__(name: str) -> Any:
    if name in TYPES:
        return serve_type(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Category", "Image", "Number", "PythonServer", "ServeGradio", "ServeStreamlit", "Text"]
