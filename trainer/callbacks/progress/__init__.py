"""PL's module path `callbacks.progress`: the progress bars."""

from .._progress import ProgressBar
from .._rich_progress import RichProgressBar
from .._tqdm_progress import TQDMProgressBar

__all__ = ["ProgressBar", "RichProgressBar", "TQDMProgressBar"]
