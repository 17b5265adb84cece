"""Lightning App's ``lightning.app.components.python.tracer`` module path."""

from ...utilities._tracer import Tracer
from .._tracer import TracerPythonScript

__all__ = ["Tracer", "TracerPythonScript"]
