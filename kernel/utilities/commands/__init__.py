"""Lightning App's ``lightning.app.utilities.commands``: ``ClientCommand``."""

from lightning_kernel._commands import ClientCommand

__all__ = ["ClientCommand"]
