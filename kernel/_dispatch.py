"""What ``work.run(...)`` does on the flow side: Lightning App's caching and blocking rules.

- ``cache_calls=True``: a call whose arguments already ran (or run) does nothing more.
- ``cache_calls=False``: a call queues one more run once the previous run with those arguments has
  finished; while it is pending or running, the call does nothing more.
- A call that has not finished stops the rest of the current ``root.run()`` unless the Work is
  ``parallel`` (``Blocked``); with ``cache_calls=False, parallel=False`` that is every call.
"""

from __future__ import annotations

from typing import Any

from ._status import FINISHED_STAGES
from ._work import call_hash, encode_args

USER_STOP = "stopped by the flow"
"""The reason of a call stopped by ``work.stop()``; other stops (signals, shutdown) are interruptions."""


class Blocked(BaseException):
    """A non-parallel Work has not finished: the rest of this ``root.run()`` waits."""


def latest_call(calls: dict[str, dict[str, Any]], key: str) -> tuple[str, dict[str, Any]] | None:
    best: tuple[str, dict[str, Any]] | None = None
    for call_id, entry in calls.items():
        if call_id.split(".", 1)[0] == key and (best is None or entry["index"] > best[1]["index"]):
            best = (call_id, entry)
    return best


def decide(
    work_name: str,
    cache_calls: bool,
    parallel: bool,
    calls: dict[str, dict[str, Any]],
    last_index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    blobs: dict[str, bytes] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """``(request, block)``: the run request to publish (None for none), and whether to block;
    ``blobs`` gets the pickles of the arguments that are not JSON."""
    jargs, jkwargs = encode_args(work_name, args, kwargs, blobs)
    key = call_hash(jargs, jkwargs)
    latest = latest_call(calls, key)
    finished = latest is not None and latest[1]["stage"] in FINISHED_STAGES
    request = None
    if latest is None or (finished and not cache_calls):
        index = last_index + 1
        call_id = key if cache_calls else f"{key}.{index}"
        request = {"call": call_id, "index": index, "args": jargs, "kwargs": jkwargs}
    if parallel:
        return request, False
    return request, not (cache_calls and finished)
