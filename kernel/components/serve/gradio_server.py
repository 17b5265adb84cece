"""Lightning App's ``lightning.app.components.serve.gradio_server`` module path."""

from .._gradio import ServeGradio

__all__ = ["ServeGradio"]
