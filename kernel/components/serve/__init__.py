"""Lightning App's ``lightning.app.components.serve`` module path (the gradio and streamlit Works)."""

from .._gradio import ServeGradio
from .._streamlit import ServeStreamlit

__all__ = ["ServeGradio", "ServeStreamlit"]
