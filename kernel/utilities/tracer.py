"""Lightning App's ``lightning.app.utilities.tracer`` module path."""

from ._tracer import Tracer, get_default_args

__all__ = ["Tracer", "get_default_args"]
