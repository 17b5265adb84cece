"""Callbacks: hooks into the Trainer's loops (checkpointing, early stopping, progress, summaries, tuning).

The names of ``pytorch_lightning.callbacks``; those left out on purpose raise an ImportError that says why.
"""

from .._not_offered import not_offered
from ._base import Callback
from ._early_stopping import EarlyStopping, EarlyStoppingReason
from ._finetuning import BackboneFinetuning, BaseFinetuning
from ._grad_accum import GradientAccumulationScheduler
from ._lambda import LambdaCallback
from ._lr_monitor import LearningRateMonitor
from ._model_checkpoint import Checkpoint, ModelCheckpoint
from ._model_summary import ModelSummary
from ._on_exception import OnExceptionCheckpoint
from ._prediction_writer import BasePredictionWriter
from ._progress import ProgressBar
from ._rich_progress import RichProgressBar, RichProgressBarTheme
from ._rich_summary import RichModelSummary
from ._timer import Timer
from ._tqdm_progress import TQDMProgressBar
from ._tuner_callbacks import BatchSizeFinder, LearningRateFinder

__all__ = [
    "BackboneFinetuning",
    "BaseFinetuning",
    "BasePredictionWriter",
    "BatchSizeFinder",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EarlyStoppingReason",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateFinder",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichModelSummary",
    "RichProgressBar",
    "RichProgressBarTheme",
    "TQDMProgressBar",
    "Timer",
]

NOT_OFFERED = {
    "DeviceStatsMonitor": "it reads accelerator statistics through PL's accelerator plugins, which this "
    "Trainer does not have; log torch.cuda.memory_stats() from a callback instead",
    "ModelPruning": "write a callback around torch.nn.utils.prune instead",
    "SpikeDetection": "it needs Fabric's spike detector; check the loss in on_train_batch_end instead",
    "StochasticWeightAveraging": "use torch.optim.swa_utils.AveragedModel and SWALR from a callback",
    "ThroughputMonitor": "it needs Fabric's throughput utilities; time steps in on_train_batch_end instead",
    "WeightAveraging": "use torch.optim.swa_utils.AveragedModel from a callback",
    "EMAWeightAveraging": "use torch.optim.swa_utils.AveragedModel(multi_avg_fn=get_ema_multi_avg_fn(...))",
}
__getattr__ = not_offered(__name__, NOT_OFFERED)
