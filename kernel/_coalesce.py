"""A Work's changes made together leave together: one ``work.state_changed`` per burst.

A Work that sets ``self.changed = True`` then ``self.msg = "..."`` must never be seen by the flow with
the first and not the second: Lightning App never shows that state (its two-Work messaging sample
relies on it). Each assignment merges what differs into a pending delta; the delta is published by
a sender thread of the worker, which only gets to run when the Work's thread lets go of the GIL
(it sleeps, waits on I/O, or has run for the interpreter's switch interval). So the assignments of a
burst of Python code are one delta, and the flow runs once for it.

Two things break that on a loaded machine, and each has its rule:

- The switch interval falls inside a burst (the Work's thread was descheduled by the OS while it held
  the GIL, and the sender's wait for it ran out). So the sender never sends on its first look:
  it gives the Work's thread a turn (sleeps ``QUIET_S``, or ``LATE_QUIET_S`` when it got to run late,
  the sign of a forced switch) and sends only once no change came during a whole such turn, or
  ``LINGER_S`` after its first look. A Work that sets one attribute and sleeps pays ``QUIET_S`` (0.2 ms,
  against a 1.6-2.0 ms change-to-flow lag).
- The sender does not get to run during a Work's pause (a 20 ms sleep), and the next change would
  join the last one's delta: a value would be lost. So a change that comes after a pause closes the
  pending delta itself, on the Work's thread. A pause is ``GAP_S`` since the last change *and* a
  voluntary context switch of the Work's thread in between (it slept or waited on I/O:
  ``getrusage(RUSAGE_THREAD).ru_nvcsw``), so that a thread merely descheduled mid-burst (an
  involuntary switch) keeps its burst whole. Where the OS has no per-thread counter, ``GAP_S`` alone.

A Work that changes attributes in a tight loop has its changes published about every ``LINGER_S``,
each delta whole. Anything else the Work publishes (its status, a persist request) first takes the
pending delta out, under the same lock, so the log keeps the order in which things happened.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from ._codec import check_size
from .errors import KernelError

QUIET_S = 0.0002
"""A whole turn of the Work's thread without a change after which the sender sends."""
LATE_QUIET_S = 0.001
"""The same, when the sender got to run late (``GAP_S`` after the burst began): a forced switch."""
LINGER_S = 0.005
"""The longest the sender waits for a burst to end once it looks (the default switch interval)."""
GAP_S = 0.002
"""A change at least this long after the previous one, with a voluntary switch between, starts a
delta of its own, whenever the sender runs."""

_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)


def voluntary_switches() -> int:
    """The calling thread's voluntary context switches so far (sleeps, waits); -1 where unknown."""
    if _RUSAGE_THREAD is None:
        return -1
    return int(resource.getrusage(_RUSAGE_THREAD).ru_nvcsw)


class Coalescer:
    """Merges a Work's state changes into deltas, emitted with ``emit(changes)``.

    ``add`` and ``flush`` are called on the Work's thread; the delayed send runs on a thread of its
    own (an event loop's timers are no good here: epoll rounds a 0.2 ms wait up to 1 ms, which was a
    millisecond more on every change the flow saw)."""

    def __init__(
        self,
        work: str,
        emit: Callable[[dict[str, Any]], None],
        limit: int,
        switches: Callable[[], int] = voluntary_switches,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._work = work
        self._emit = emit
        self._limit = limit
        self._switches = switches
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._first = 0.0
        self._last = 0.0
        self._last_switches = 0
        self._generation = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def add(self, changes: dict[str, Any]) -> None:
        """Merge ``changes``; raises ``KernelError`` (naming the Work) when they alone are too big."""
        if self._thread is None:
            # Before the change is timed: starting a thread waits for it, which is no pause of the
            # Work (under load that wait passed GAP_S, and a first burst was split in two).
            with self._starting:
                if self._thread is None:
                    sender = threading.Thread(target=self._send_loop, name="lk-coalesce", daemon=True)
                    sender.start()
                    self._thread = sender
        now, switches = time.perf_counter(), self._switches()
        with self._lock:
            merged = {**self._pending, **changes}
            try:
                check_size(self._work, merged, self._limit)
            except KernelError:
                # Too big together: what was pending goes first, then these alone (or their error).
                check_size(self._work, changes, self._limit)
                self._take_and_emit()
                merged = dict(changes)
            if self._pending and now - self._last >= GAP_S and switches != self._last_switches:
                # The Work paused since its last change: that burst is over, whether or not the
                # sender ran meanwhile.
                self._take_and_emit()
                merged = dict(changes)
            if not self._pending:
                self._first = now
            self._pending = merged
            self._last = now
            self._last_switches = switches
            self._generation += 1
        self._wake.set()

    def flush(self) -> None:
        """Emit the pending delta now (before another event of the Work, and at the end of a call)."""
        with self._lock:
            self._take_and_emit()

    def _take_and_emit(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            self._emit(pending)

    def _send_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.linger()

    def linger(self) -> None:
        """Send the pending delta once its burst is over (the sender thread's turn)."""
        look = time.perf_counter()
        with self._lock:
            if not self._pending:
                return
            late = look - self._first >= GAP_S
            seen = self._generation
        turn = LATE_QUIET_S if late else QUIET_S
        deadline = look + LINGER_S
        while True:
            self._sleep(turn)  # the Work's thread may finish its burst meanwhile
            now = time.perf_counter()
            with self._lock:
                if not self._pending:
                    return
                if self._generation == seen or now >= deadline:
                    self._take_and_emit()
                    return
                seen = self._generation
