"""The clock the flow loop reads to know when a schedule ticks.

The loop is the only reader: the fold and the flow's iterations never read a clock (they read the
ticks the loop recorded as events), so a replay decides what the run decided whatever the time.

``Clock`` is two methods: ``now()`` (seconds since the epoch) and ``wait_until(when)``, which returns
once this clock reads ``when`` or later. ``SystemClock`` is the wall clock. ``FileClock`` is a
fake one for tests: its time is the number written in a file, so a test moves time by writing the
file and the loop wakes as soon as the file's time passes its next tick; ``LK_CLOCK=file:PATH``
selects it (``clock_from_env``). It polls the file every ``FileClock.poll`` seconds, and only while
the loop waits for a tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from .errors import ConfigError


class Clock(Protocol):
    """What the loop needs of time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def wait_until(self, when: float) -> None:
        """Return once ``now()`` reads ``when`` or later (the loop cancels it when an event comes)."""
        ...


class SystemClock:
    """The wall clock (``time.time()``)."""

    recheck = 30.0
    """The longest single wait: asyncio's timers run on the monotonic clock, which stops while the
    machine sleeps and does not follow a wall clock set forward; a long wait checks the wall clock
    again this often, so a daily schedule is not a day late after a suspend."""

    def now(self) -> float:
        return time.time()

    async def wait_until(self, when: float) -> None:
        while True:
            left = when - time.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.recheck))


class FileClock:
    """A fake clock: its time is the float written in ``path`` (epoch seconds). Time stands still
    until the file says otherwise; a file being rewritten (empty, half a number) reads as the last
    time read."""

    poll = 0.02

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last: float | None = None
        self._last = self._read(strict=True)

    def _read(self, strict: bool = False) -> float:
        try:
            text = self.path.read_text().strip()
            value = float(text)
        except (OSError, ValueError) as exc:
            if strict or self._last is None:
                raise ConfigError(
                    f"LK_CLOCK=file:{self.path}: the file must hold the current time as seconds since "
                    f"the epoch (such as 1700000000), and could not be read: {exc}"
                ) from None
            return self._last
        self._last = value
        return value

    def now(self) -> float:
        return self._read()

    async def wait_until(self, when: float) -> None:
        while self.now() < when:
            await asyncio.sleep(self.poll)


def clock_from_env(env: Mapping[str, str]) -> Clock:
    """The clock ``LK_CLOCK`` names: unset or ``system`` for the wall clock, ``file:PATH`` for a
    ``FileClock`` (tests)."""
    spec = env.get("LK_CLOCK", "").strip()
    if spec in ("", "system"):
        return SystemClock()
    if spec.startswith("file:") and spec[5:]:
        return FileClock(spec[5:])
    raise ConfigError(f"LK_CLOCK={spec!r}: use 'system' or 'file:PATH' (a file holding epoch seconds)")


__all__ = ["Clock", "FileClock", "SystemClock", "clock_from_env"]
