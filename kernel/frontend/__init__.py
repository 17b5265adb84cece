"""A flow's UI, as Lightning App's ``lightning.app.frontend``: what ``configure_layout()`` returns."""

from .frontend import Frontend
from .just_py import JustPyFrontend
from .panel import PanelFrontend
from .stream_lit import StreamlitFrontend
from .web import StaticWebFrontend

__all__ = ["Frontend", "JustPyFrontend", "PanelFrontend", "StaticWebFrontend", "StreamlitFrontend"]
