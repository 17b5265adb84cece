"""Cron expressions: the one module that talks to the cron library.

The library is ``croniter``. Both candidates on the registry were weighed:

- ``croniter`` (7.0.0) is what Lightning App's scheduler itself called (``croniter(pattern,
  start_time).get_next(datetime)``), so a pattern means here exactly what it meant there: the same
  5-, 6- (seconds last) and 7-field forms, the same ``@hourly``/``@midnight``/``@annually`` macros,
  the same day-of-month/day-of-week rule. Its 7.x releases are kept by maintainers of Apache
  Airflow (whose scheduler depends on it), after its first maintainer stepped down at the end of 2024.
- ``cronsim`` (2.8, the cron engine of healthchecks.io) is small, exact and well tested, but it is
  another implementation with its own set of accepted forms and macros; a schedule that accepts
  other patterns, or fires at other times, after a port from Lightning App is the surprise this
  project must not have.

Times are seconds since the epoch; a pattern is read in the kernel's local time zone, as Lightning
App read it (it handed ``datetime.now()``, a naive local time, to croniter), so ``"0 9 * * *"`` is
9:00 where the kernel runs (set ``TZ`` to choose another zone).
"""

from __future__ import annotations

import math
from datetime import datetime

from croniter import CroniterError, croniter

from .errors import ScheduleError

ALIASES = {
    "midnight": "@midnight",
    "hourly": "@hourly",
    "daily": "@daily",
    "weekly": "@weekly",
    "monthly": "@monthly",
    "yearly": "@yearly",
    "annually": "@annually",
}
"""Lightning App's names for croniter's macros: ``schedule("hourly")`` is ``schedule("@hourly")``."""


def expand(pattern: str, flow: str = "") -> str:
    """The cron expression ``pattern`` stands for (an alias becomes its ``@`` form); raises
    ``ScheduleError`` naming ``flow`` and the pattern when croniter cannot read it."""
    if not isinstance(pattern, str):
        raise ScheduleError(
            flow, str(pattern), "a cron pattern is a string, such as 'hourly' or '*/5 * * * *'"
        )
    expr = ALIASES.get(pattern.strip(), pattern.strip())
    try:
        croniter(expr, datetime(2000, 1, 1))
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(flow, pattern, str(exc) or type(exc).__name__) from None
    return expr


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t)


def next_after(expr: str, t: float) -> float:
    """The first time of ``expr`` strictly after ``t``."""
    when: datetime = croniter(expr, _local(t)).get_next(datetime)
    return when.timestamp()


def latest_at_or_before(expr: str, t: float) -> float:
    """The last time of ``expr`` at or before ``t`` (croniter's ``get_prev`` is strictly before its
    start, and its finest field is the second)."""
    when: datetime = croniter(expr, _local(math.floor(t) + 1)).get_prev(datetime)
    return when.timestamp()


__all__ = ["ALIASES", "expand", "latest_at_or_before", "next_after"]
