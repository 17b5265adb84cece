"""``Timer``: how long each stage has run, and a time limit on training.

Times are ``time.monotonic()`` differences. The elapsed training time is saved in checkpoints, so a
resumed run counts the time it had already used against ``duration``.
"""

import logging
import re
import time
from datetime import timedelta
from typing import Any

from .._args import parse_max_time
from .._errors import MisconfigurationException
from .._state import RunningStage
from ._base import Callback
from ._ranks import broadcast

Trainer = Any
LightningModule = Any

log = logging.getLogger("lightning_kernel.trainer.callbacks.timer")

_STAGES = (RunningStage.TRAINING, RunningStage.VALIDATING, RunningStage.TESTING, RunningStage.PREDICTING)


class Timer(Callback):
    """Track each stage's time; stop training once ``duration`` has passed.

    Args:
        duration: ``"DD:HH:MM:SS"``, a ``timedelta`` or a dict of ``timedelta`` keywords; None: no limit.
        interval: check the limit after every ``"step"`` or every ``"epoch"``.
        verbose: log when the limit stops training.
    """

    def __init__(
        self,
        duration: str | timedelta | dict[str, int] | None = None,
        interval: str = "step",
        verbose: bool = True,
    ) -> None:
        super().__init__()
        if interval not in ("step", "epoch"):
            raise MisconfigurationException(
                f"Unsupported parameter value `Timer(interval={interval})`. Possible values are: step, epoch."
            )
        if isinstance(duration, str) and not re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip()):
            raise MisconfigurationException(
                f"`Timer(duration={duration!r})` is not a valid duration. Expected a string in the format DD:HH:MM:SS."
            )
        seconds = parse_max_time(duration.strip() if isinstance(duration, str) else duration)
        self._duration = seconds
        self._interval = interval
        self._verbose = verbose
        self._start_time: dict[RunningStage, float | None] = dict.fromkeys(_STAGES)
        self._end_time: dict[RunningStage, float | None] = dict.fromkeys(_STAGES)
        self._offset = 0.0

    def start_time(self, stage: str = RunningStage.TRAINING) -> float | None:
        """The monotonic time when ``stage`` started, or None."""
        return self._start_time[RunningStage(stage)]

    def end_time(self, stage: str = RunningStage.TRAINING) -> float | None:
        """The monotonic time when ``stage`` ended, or None."""
        return self._end_time[RunningStage(stage)]

    def time_elapsed(self, stage: str = RunningStage.TRAINING) -> float:
        """Seconds ``stage`` has run (until now if it still runs); training includes a resumed run's."""
        stage = RunningStage(stage)
        start, end = self._start_time[stage], self._end_time[stage]
        offset = self._offset if stage == RunningStage.TRAINING else 0.0
        if start is None:
            return offset
        if end is None:
            return time.monotonic() - start + offset
        return end - start + offset

    def time_remaining(self, stage: str = RunningStage.TRAINING) -> float | None:
        """Seconds left before ``duration``, or None without a limit."""
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def _start(self, stage: RunningStage) -> None:
        self._start_time[stage] = time.monotonic()
        self._end_time[stage] = None

    def _end(self, stage: RunningStage) -> None:
        self._end_time[stage] = time.monotonic()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(RunningStage.TRAINING)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end(RunningStage.TRAINING)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(RunningStage.VALIDATING)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end(RunningStage.VALIDATING)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(RunningStage.TESTING)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end(RunningStage.TESTING)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(RunningStage.PREDICTING)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end(RunningStage.PREDICTING)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # a limit already used up by the run this one resumes stops it before any step
        if self._duration is not None and self._offset > 0 and self._offset >= self._duration:
            trainer.should_stop = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage.value: self.time_elapsed(stage) for stage in _STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        elapsed = state_dict.get("time_elapsed", {})
        self._offset = float(elapsed.get(RunningStage.TRAINING.value, 0.0))

    def _check_time_remaining(self, trainer: Trainer) -> None:
        assert self._duration is not None
        # clocks differ across ranks: rank zero decides, so that every rank stops together
        should_stop = bool(broadcast(trainer, self.time_elapsed() >= self._duration))
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop and self._verbose and trainer.is_global_zero:
            elapsed = timedelta(seconds=int(self.time_elapsed(RunningStage.TRAINING)))
            log.info(f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop.")
