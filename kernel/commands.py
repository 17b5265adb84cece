"""The flow's commands, as Lightning App's ``lightning.app.utilities.commands``."""

from ._commands import ClientCommand

__all__ = ["ClientCommand"]
