"""Lightning App's ``lightning.app.components.python`` module path."""

from .._popen import PopenPythonScript
from .._tracer import TracerPythonScript

__all__ = ["PopenPythonScript", "TracerPythonScript"]
