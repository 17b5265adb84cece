"""``Trainer(profiler="simple")``: wall time per hook and step, summarised when the run ends."""

import logging
import time
from collections import defaultdict
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from . import _fs
from ._errors import MisconfigurationException

log = logging.getLogger("lightning_kernel.trainer.profilers.profiler")


class PassThroughProfiler:
    """No profiling; the loops skip the profiled dispatch entirely when this is the profiler."""

    enabled = False

    @contextmanager
    def profile(self, action_name: str) -> Generator[None, None, None]:
        yield

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        pass

    def describe(self) -> None:
        pass

    def summary(self) -> str:
        return ""

    def teardown(self, stage: str | None) -> None:
        pass


class SimpleProfiler(PassThroughProfiler):
    """Total and mean seconds per action; printed, or written to ``dirpath/filename`` if given."""

    enabled = True

    def __init__(self, dirpath: str | None = None, filename: str | None = None) -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.recorded_durations = self.durations  # PL's name for the same table: action -> seconds per call
        self._stage = ""
        self._log_dir: str | None = None

    @contextmanager
    def profile(self, action_name: str) -> Generator[None, None, None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.durations[action_name].append(time.perf_counter() - start)

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        self._stage = stage
        self._log_dir = log_dir

    def summary(self) -> str:
        rows = sorted(self.durations.items(), key=lambda kv: -sum(kv[1]))
        if not rows:
            return ""
        width = max(len(name) for name, _ in rows) + 2
        lines = [
            f"{'Action':<{width}}| {'Mean (s)':>12} | {'Calls':>8} | {'Total (s)':>12}",
            "-" * (width + 42),
        ]
        for name, values in rows:
            total = sum(values)
            lines.append(f"{name:<{width}}| {total / len(values):>12.6f} | {len(values):>8} | {total:>12.6f}")
        return f"FIT Profiler Report ({self._stage})\n" + "\n".join(lines)

    def describe(self) -> None:
        text = self.summary()
        if not text:
            return
        dirpath = self.dirpath or (self._log_dir if self.filename else None)
        if self.filename and dirpath:
            path = _fs.join(dirpath, f"{self._stage}-{self.filename}.txt")
            _fs.write_bytes_atomic(path, text.encode())
        else:
            log.info(text)  # PL's profilers log their report (on rank zero) when no file is given

    def teardown(self, stage: str | None) -> None:
        self.durations.clear()


def make_profiler(profiler: Any) -> PassThroughProfiler:
    if profiler is None:
        return PassThroughProfiler()
    if isinstance(profiler, str):
        if profiler.lower() == "simple":
            return SimpleProfiler()
        raise MisconfigurationException(
            f"profiler={profiler!r} is not supported; use 'simple' or an object with a profile(name) context manager"
        )
    if not callable(getattr(profiler, "profile", None)):
        raise MisconfigurationException(f"profiler={profiler!r} has no profile(action_name) context manager")
    return profiler
