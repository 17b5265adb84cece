"""Ready-made Works, as Lightning App's ``lightning.app.components``: scripts run as Works and the
serving helpers. Importing this package imports neither gradio nor streamlit."""

from ._gradio import ServeGradio
from ._popen import PopenPythonScript
from ._python_server import PythonServer
from ._streamlit import ServeStreamlit
from ._tracer import TracerPythonScript

__all__ = ["PopenPythonScript", "PythonServer", "ServeGradio", "ServeStreamlit", "TracerPythonScript"]
