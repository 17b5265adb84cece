"""Lightning App's ``lightning.app.components.serve.streamlit`` module path."""

from .._streamlit import ServeStreamlit

__all__ = ["ServeStreamlit"]
