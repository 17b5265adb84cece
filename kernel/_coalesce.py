"""A Work's changes made together leave together: one ``work.state_changed`` per burst.

A Work that sets ``self.changed = True`` then ``self.msg = "..."`` must never be seen by the flow with
the first and not the second: Lightning App never shows that state (its two-Work messaging sample
relies on it). Each assignment merges what differs into a pending delta; the delta is published by
the worker's publisher thread, which only gets to run when the Work's thread lets go of the GIL
(it sleeps, waits on I/O, or has run for the interpreter's switch interval). So the assignments of a
burst of Python code are one delta, and the flow runs once for it.

The switch interval can still fall between two assignments of a burst. Before it publishes, the
publisher therefore lingers until the Work's last change is ``QUIET_S`` old, or at most ``LINGER_S``
after the first. And a change that comes ``GAP_S`` after the previous one closes the pending delta
itself, on the Work's thread: on a loaded machine the publisher's thread may not run for longer than a
Work's pause, and two changes with a pause between them must stay two. So: a Work that sets one attribute and then sleeps pays ``QUIET_S`` of latency (0.2 ms
against a 1.6-2.0 ms change-to-flow lag), and one that changes attributes every 20 ms has every
value seen. A Work that changes attributes in a tight loop for longer than ``LINGER_S`` has its
changes published every ``LINGER_S``, each delta whole.

Anything else the Work publishes (its status, a persist request) first takes the pending delta out,
under the same lock, so the log keeps the order in which things happened.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from ._codec import check_size
from .errors import KernelError

QUIET_S = 0.0002
"""Seconds without a change after which the publisher sends a pending delta."""
LINGER_S = 0.005
"""The longest a delta waits for its burst to end (the interpreter's default switch interval)."""
GAP_S = 0.002
"""A change this long after the previous one starts a delta of its own, whenever the publisher runs:
changes made with a pause between them are never merged (the publisher's thread may be starved on a
loaded machine, and a flow must still see a value changed every 20 ms at every value)."""


class Coalescer:
    """Merges a Work's state changes into deltas, emitted with ``emit(changes)``.

    ``add`` and ``flush`` are called on the Work's thread; the delayed flush runs on ``loop`` (the
    worker's publisher thread)."""

    def __init__(
        self,
        work: str,
        emit: Callable[[dict[str, Any]], None],
        loop: asyncio.AbstractEventLoop,
        limit: int,
    ) -> None:
        self._work = work
        self._emit = emit
        self._loop = loop
        self._limit = limit
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._first = 0.0
        self._last = 0.0
        self._scheduled = False
        self._task: asyncio.Future[None] | None = None

    def add(self, changes: dict[str, Any]) -> None:
        """Merge ``changes``; raises ``KernelError`` (naming the Work) when they alone are too big."""
        with self._lock:
            merged = {**self._pending, **changes}
            try:
                check_size(self._work, merged, self._limit)
            except KernelError:
                # Too big together: what was pending goes first, then these alone (or their error).
                check_size(self._work, changes, self._limit)
                self._take_and_emit()
                merged = dict(changes)
            now = time.perf_counter()
            if self._pending and now - self._last > GAP_S:
                # A pause since the last change: that burst is over, whether or not the publisher ran.
                self._take_and_emit()
                merged = dict(changes)
            if not self._pending:
                self._first = now
            self._pending = merged
            self._last = now
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon_threadsafe(self._start_linger)

    def flush(self) -> None:
        """Emit the pending delta now (before another event of the Work, and at the end of a call)."""
        with self._lock:
            self._take_and_emit()

    def _take_and_emit(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            self._emit(pending)

    def _start_linger(self) -> None:
        self._task = asyncio.ensure_future(self._linger())

    async def _linger(self) -> None:
        while True:
            now = time.perf_counter()
            with self._lock:
                if not self._pending:
                    self._scheduled = False
                    return
                quiet = now - self._last
                if quiet >= QUIET_S or now - self._first >= LINGER_S:
                    self._scheduled = False
                    self._take_and_emit()
                    return
                wait = min(QUIET_S - quiet, LINGER_S - (now - self._first))
            await asyncio.sleep(max(wait, 0.0))
