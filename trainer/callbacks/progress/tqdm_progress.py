"""PL's module path `callbacks.progress.tqdm_progress`."""

from .._tqdm_progress import TQDMProgressBar

__all__ = ["TQDMProgressBar"]
