"""PL's module path `callbacks.progress.progress_bar`."""

from .._progress import ProgressBar, get_standard_metrics

__all__ = ["ProgressBar", "get_standard_metrics"]
