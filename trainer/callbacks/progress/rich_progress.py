"""PL's module path `callbacks.progress.rich_progress`."""

from .._rich_progress import RichProgressBar, RichProgressBarTheme

__all__ = ["RichProgressBar", "RichProgressBarTheme"]
