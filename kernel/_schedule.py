"""Schedules: ``LightningFlow.schedule(cron_pattern, start_time=None, user_key=None)`` as Lightning
App 2.3.2 has it, with every tick an event so that a replay and a resume decide what the run decided.

A schedule's life, in events (all on ``lk.<run>.flow``)::

    iteration  flow.schedule(...) is called at a call site for the first time: it returns True
               -> flow.schedule_registered {flow, key, cron, start}
    loop       (no start_time given) its clock when that iteration began -> flow.schedule_started {at}
    loop       its clock passes the next cron time after the last tick (or the start)
               -> flow.schedule_ticked {at}; the fold marks the schedule due
    iteration  the next iteration sees flow.schedule() return True for it
               -> flow.schedule_consumed {at}; the fold clears it: False until the next tick

The fold (``FOLDS``, used by ``_projection``) keeps ``state["schedules"] = {flow: {key: {"cron",
"start", "last", "due"}}}``: ``last`` is the newest tick (the start before the first) and ``due``
the tick an iteration has not run on yet, None when none. The iteration (``Book``) reads only that
state, never a clock; the loop (``plan``, called by ``_loop.RunDriver`` with its ``_clock.Clock``)
is the only reader of time.

As in Lightning App:

- the first call at a call site returns True, and registers the schedule; later calls return True in
  the one iteration that runs on each tick, False otherwise. The first iteration after a tick
  consumes it whether or not it reaches the ``schedule()`` call (Lightning App reset every
  schedule's flag after each ``root.run()``, ``on_run_once_end``), so a Work that blocks the
  iteration before the call makes the flow miss that tick there too.
- the cache key is ``user_key``, else the pattern and the call site. Lightning App used the call
  site's full file name; here it is the file's base name and the line (``hourly@app.py:12``),
  because the app's folder is another one in a resumed run on another host and in a replay.
- ``start_time`` (a ``datetime``, naive ones in local time) is when ticks start counting; without
  it, from when the schedule was first hit. Ticks are read in the kernel's local time (``_cron``).
- a Work started under a schedule behaves as there: ``if self.schedule("hourly"): self.w.run(n)``
  asks one run per tick (with ``cache_calls=False``, or arguments that differ), which goes on to
  the end though later iterations no longer call it; the best practice Lightning App documents
  (create Works under the condition, run them outside it) works the same.

Downtime: the ticks a schedule missed while no kernel hosted its run (interrupted, then ``resume``)
collapse into one catch-up tick when the run is resumed, at the newest cron time that passed, and
the regular cadence goes on from there: a flow that runs hourly and was down for five hours runs
once on resume, then at the next full hour. Lightning App, which kept schedules in the memory of a
thread that checked them every second, had no resume; a user of cron (``anacron``, systemd's
``Persistent=true``) expects this. The same holds for a fake clock that jumps ahead: one tick.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import datetime
from functools import lru_cache
from typing import Any

from . import _cron
from ._events import (
    Event,
    ScheduleConsumed,
    ScheduleRegistered,
    ScheduleStarted,
    ScheduleTicked,
)
from .errors import ScheduleError

State = dict[str, Any]

# -- the fold -----------------------------------------------------------------------------------------


def _with(state: State, flow: str, key: str, entry: dict[str, Any]) -> State:
    new = dict(state)
    schedules = dict(state.get("schedules") or {})
    keys = dict(schedules.get(flow) or {})
    keys[key] = entry
    schedules[flow] = keys
    new["schedules"] = schedules
    return new


def _entry(state: State, flow: str, key: str) -> dict[str, Any] | None:
    entry: dict[str, Any] | None = ((state.get("schedules") or {}).get(flow) or {}).get(key)
    return entry


def _registered(state: State, body: dict[str, Any]) -> State:
    flow, key = body["flow"], body["key"]
    if _entry(state, flow, key) is not None:
        return dict(state)  # registered once; a second registration (a fork's copy) changes nothing
    start = body.get("start")
    start = None if start is None else float(start)
    return _with(state, flow, key, {"cron": str(body["cron"]), "start": start, "last": start, "due": None})


def _started(state: State, body: dict[str, Any]) -> State:
    entry = _entry(state, body["flow"], body["key"])
    if entry is None or entry["last"] is not None:
        return dict(state)
    at = float(body["at"])
    return _with(state, body["flow"], body["key"], {**entry, "start": at, "last": at})


def _ticked(state: State, body: dict[str, Any]) -> State:
    entry = _entry(state, body["flow"], body["key"])
    if entry is None:
        return dict(state)
    at = float(body["at"])
    last = entry["last"]
    if last is not None and at <= last:
        return dict(state)  # a tick the schedule is past already
    return _with(state, body["flow"], body["key"], {**entry, "last": at, "due": at})


def _consumed(state: State, body: dict[str, Any]) -> State:
    entry = _entry(state, body["flow"], body["key"])
    # Only the tick the iteration saw: a newer one that came meanwhile is still due.
    if entry is None or entry["due"] != float(body["at"]):
        return dict(state)
    return _with(state, body["flow"], body["key"], {**entry, "due": None})


FOLDS: dict[type[Event], Callable[[State, dict[str, Any]], State]] = {
    ScheduleRegistered: _registered,
    ScheduleStarted: _started,
    ScheduleTicked: _ticked,
    ScheduleConsumed: _consumed,
}
"""The fold of each schedule event, on its body (``_projection`` reads and checks the body)."""

BOOKKEEPING = frozenset({ScheduleRegistered.TYPE, ScheduleStarted.TYPE, ScheduleConsumed.TYPE})
"""The schedule events after which ``root.run()`` need not run again: they change nothing the flow
can see (only a tick does)."""


def due(state: State) -> list[tuple[str, str, float]]:
    """``(flow, key, tick)`` of every schedule due in ``state``, in a stable order."""
    out: list[tuple[str, str, float]] = []
    for flow, keys in sorted((state.get("schedules") or {}).items()):
        for key, entry in sorted(keys.items()):
            if entry["due"] is not None:
                out.append((flow, key, entry["due"]))
    return out


# -- the iteration ------------------------------------------------------------------------------------


class Book:
    """The schedules as one iteration sees them: what ``flow.schedule()`` returns, and the events it
    leaves (registrations in call order, then the ticks it consumed)."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._new: list[ScheduleRegistered] = []
        self._seen: set[tuple[str, str]] = set()

    def hit(self, flow: str, key: str, cron: str, start: float | None) -> bool:
        entry = _entry(self._state, flow, key)
        if entry is not None:
            return entry["due"] is not None
        if (flow, key) in self._seen:
            return False  # a second call in the iteration that registered it
        self._seen.add((flow, key))
        self._new.append(ScheduleRegistered(flow=flow, key=key, cron=cron, start=start))
        return True

    def events(self) -> list[Event]:
        consumed = [ScheduleConsumed(flow=f, key=k, at=at) for f, k, at in due(self._state)]
        return [*self._new, *consumed]


_BOOK: ContextVar[Book | None] = ContextVar("lightning_kernel_schedule_book", default=None)


def enter(state: State) -> tuple[Book, Token[Book | None]]:
    """Start the ``Book`` that ``flow.schedule()`` calls consult while ``root.run()`` runs on
    ``state``; ``leave(token)`` when it returns."""
    book = Book(state)
    return book, _BOOK.set(book)


def leave(token: Token[Book | None]) -> None:
    _BOOK.reset(token)


def _epoch(start_time: Any, flow: str, pattern: str) -> float | None:
    if start_time is None:
        return None
    if isinstance(start_time, datetime):
        return start_time.timestamp()  # a naive datetime is local time, as croniter read it in LA
    if isinstance(start_time, (int, float)) and not isinstance(start_time, bool):
        return float(start_time)
    raise ScheduleError(
        flow, pattern, f"start_time must be a datetime (or epoch seconds), not {type(start_time).__name__}"
    )


def call(flow: Any, pattern: str, start_time: Any, user_key: str | None, depth: int = 2) -> bool:
    """``flow.schedule(pattern, start_time, user_key)``; ``depth`` frames up is the call site."""
    name = flow.name or "root"
    cron = _cron.expand(pattern, name)
    start = _epoch(start_time, name, pattern)
    if user_key:
        key = str(user_key)
    else:
        frame = inspect.currentframe()
        for _ in range(depth):
            assert frame is not None
            frame = frame.f_back
        assert frame is not None
        key = f"{pattern}@{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    book = _BOOK.get()
    if book is None:
        # Outside a kernel's iteration (a flow's run() called by hand, a unit test): Lightning App
        # without an app returns True on the first call and False after it.
        seen: set[str] = flow.__dict__.setdefault("_lk_schedules", set())
        if key in seen:
            return False
        seen.add(key)
        return True
    return book.hit(name, key, cron, start)


# -- the loop -----------------------------------------------------------------------------------------


def starts(events: list[Event], now: float, sent: dict[tuple[str, str], float]) -> list[Event]:
    """The ``flow.schedule_started`` the loop publishes after an iteration that emitted ``events``:
    one at ``now``, the loop's clock as that iteration began, for each schedule it registered
    without a ``start_time``; noted in ``sent`` (see ``plan``)."""
    out: list[Event] = []
    for e in events:
        if isinstance(e, ScheduleRegistered) and e.start is None:
            out.append(ScheduleStarted(flow=e.flow, key=e.key, at=now))
            sent[(e.flow, e.key)] = now
    return out


@lru_cache(maxsize=1024)
def _next(cron: str, after: float) -> float:
    return _cron.next_after(cron, after)


def plan(state: State, now: float, sent: dict[tuple[str, str], float]) -> tuple[list[Event], float | None]:
    """What the loop publishes at clock time ``now``, and the clock time of the next tick after that
    (None: no schedule).

    ``sent`` holds the time of each start or tick the loop published that ``state`` may not have
    folded yet; ``plan`` adds to it what it returns. A schedule with no start gets one (``now``);
    one whose next cron time has passed gets one tick, at the newest cron time that passed (the ticks
    it missed collapse into it).
    """
    events: list[Event] = []
    earliest: float | None = None
    for flow, keys in sorted((state.get("schedules") or {}).items()):
        for key, entry in sorted(keys.items()):
            cron = entry["cron"]
            base = max(
                (t for t in (entry["last"], sent.get((flow, key))) if t is not None),
                default=None,
            )
            if base is None:
                events.append(ScheduleStarted(flow=flow, key=key, at=now))
                sent[(flow, key)] = base = now
            try:
                nxt = _next(cron, base)
            except (ValueError, KeyError):  # a recorded pattern this croniter cannot read: no ticks
                continue
            if nxt <= now:
                at = max(nxt, _cron.latest_at_or_before(cron, now))
                events.append(ScheduleTicked(flow=flow, key=key, at=at))
                sent[(flow, key)] = at
                nxt = _next(cron, at)
            earliest = nxt if earliest is None else min(earliest, nxt)
    return events, earliest


__all__ = ["BOOKKEEPING", "FOLDS", "Book", "call", "due", "enter", "leave", "plan", "starts"]
