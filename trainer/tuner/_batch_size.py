"""The batch-size finder: the largest batch that fits, by trial runs of a few steps each.

``power`` doubles the batch size until a trial runs out of memory, then halves it once. ``binsearch``
doubles the same way, then bisects between the last size that fitted and the first that did not,
and takes ``margin`` off the result as a safety buffer. A batch size at least as large as the
dataset stops the search (a bigger one would change nothing), and so does ``max_val``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from ._attr import lightning_getattr, lightning_setattr
from ._trials import free_memory, is_oom_error

log = logging.getLogger("lightning_kernel.trainer.tuner.batch_size_scaling")


class BatchSizeSearch:
    """State of one search: the module and datamodule holding the size, and the trial to run."""

    def __init__(
        self,
        model: Any,
        datamodule: Any,
        batch_arg_name: str,
        run_trial: Callable[[], None],
        dataset_length: Callable[[], int | None],
        max_val: int | None = None,
    ) -> None:
        self.model = model
        self.datamodule = datamodule
        self.batch_arg_name = batch_arg_name
        self.run_trial = run_trial
        self.dataset_length = dataset_length
        self.max_val = max_val
        self.trials: list[tuple[int, bool]] = []

    @property
    def size(self) -> int:
        return int(lightning_getattr(self.model, self.batch_arg_name, self.datamodule))

    def adjust(
        self, factor: float = 1.0, value: int | None = None, desc: str | None = None
    ) -> tuple[int, bool]:
        """Set the batch size to ``value`` or ``size * factor``; whether it changed."""
        current = self.size
        new_size = value if value is not None else int(current * factor)
        length = self.dataset_length()
        if length is not None and current >= length and new_size >= current:
            log.info(f"The batch size {current} is greater or equal than the length of your dataset.")
            return current, False
        if self.max_val is not None and new_size > self.max_val:
            new_size = self.max_val
        new_size = max(1, new_size)
        if desc:
            log.info(f"Batch size {current} {desc}, trying batch size {new_size}")
        lightning_setattr(self.model, self.batch_arg_name, new_size, self.datamodule)
        return new_size, new_size != current

    def _try(self) -> bool:
        """Run one trial at the current size: True if it fitted, False on out-of-memory."""
        free_memory()
        size = self.size
        try:
            self.run_trial()
        except (RuntimeError, MemoryError) as err:
            if not is_oom_error(err):
                raise
            free_memory(after_failure=True)
            self.trials.append((size, False))
            return False
        self.trials.append((size, True))
        return True

    def _at_limit(self) -> bool:
        if self.max_val is not None and self.size >= self.max_val:
            log.info(f"Reached the maximum batch size limit of {self.max_val}. Stopping search.")
            return True
        return False

    def power(self, max_trials: int) -> int:
        """Double after each trial that fits, ``max_trials`` trials at most; halve once after a failure."""
        any_success = False
        for trial in range(max_trials):
            if self._at_limit():
                break
            if self._try():
                if trial + 1 >= max_trials:
                    break  # the last trial fitted: keep its size, untried doublings prove nothing
                _, changed = self.adjust(factor=2.0, desc="succeeded")
                if not changed:
                    break
                any_success = True
            else:
                self.adjust(factor=0.5, desc="failed")
                if any_success:
                    break
        return self.size

    def binsearch(self, max_trials: int, margin: float) -> int:
        """Double until a trial fails, then bisect; ``margin`` off the result (5% by default)."""
        low, high = 1, None
        new_size = self.size
        count = 0
        while not self._at_limit():
            if self._try():
                count += 1
                if count >= max_trials:
                    break
                low = new_size
                if high is not None:
                    if high - low <= 1:
                        break
                    new_size, changed = self.adjust(value=(high + low) // 2, desc="succeeded")
                else:
                    new_size, changed = self.adjust(factor=2.0, desc="succeeded")
                if not changed:
                    break
            else:
                high = new_size
                new_size, _ = self.adjust(value=(high + low) // 2, desc="failed")
                if high - low <= 1:
                    break
        new_size = self.size
        if margin > 0:
            reduced = max(1, int(new_size * (1 - margin)))
            if reduced != new_size:
                log.info(f"Applying margin of {margin:.1%}, reducing batch size from {new_size} to {reduced}")
                lightning_setattr(self.model, self.batch_arg_name, reduced, self.datamodule)
                new_size = reduced
        return new_size


def validate_search_args(
    mode: str, steps_per_trial: int, init_val: int, max_trials: int, margin: float
) -> None:
    from .._errors import MisconfigurationException

    if mode not in ("power", "binsearch"):
        raise MisconfigurationException(f"scale_batch_size(mode={mode!r}) must be 'power' or 'binsearch'.")
    if steps_per_trial < 1 or init_val < 1 or max_trials < 1:
        raise MisconfigurationException(
            f"scale_batch_size needs steps_per_trial, init_val and max_trials >= 1 (got {steps_per_trial}, "
            f"{init_val}, {max_trials})."
        )
    if not 0.0 <= margin < 1.0:
        raise MisconfigurationException(f"scale_batch_size(margin={margin}) must be in [0, 1).")
    if init_val > 2**20:
        warnings.warn(f"scale_batch_size(init_val={init_val}) is very large.", stacklevel=3)
