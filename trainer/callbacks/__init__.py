"""Callbacks: hooks into the Trainer's loops (checkpointing, early stopping, progress, summaries)."""

from ._base import Callback
from ._early_stopping import EarlyStopping, EarlyStoppingReason
from ._lr_monitor import LearningRateMonitor
from ._model_checkpoint import Checkpoint, ModelCheckpoint
from ._model_summary import ModelSummary
from ._progress import ProgressBar
from ._rich_progress import RichProgressBar, RichProgressBarTheme
from ._tqdm_progress import TQDMProgressBar

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EarlyStoppingReason",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "ProgressBar",
    "RichProgressBar",
    "RichProgressBarTheme",
    "TQDMProgressBar",
]
