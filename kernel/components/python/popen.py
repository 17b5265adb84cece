"""Lightning App's ``lightning.app.components.python.popen`` module path."""

from .._popen import PopenPythonScript

__all__ = ["PopenPythonScript"]
