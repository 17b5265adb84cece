"""The streams of ``serve``'s API: a run's events and log lines as server-sent events (``_sse``).

A stream sends what was recorded after ``after``, then each record as it is recorded, and ends with an
``end`` message once the run has ended and everything of it was sent. Events wake it as the recorder
commits them (``Server._news``); log lines are looked for every ``LOGS_TICK_S`` (the recorder does not
signal them). It stops, without ``end``, when the server stops; the client reconnects with
``Last-Event-ID``. A client that leaves cancels it (Starlette's ``StreamingResponse`` listens for the
disconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import _sse as sse
from ._projection import RUN_ENDED
from ._views import event_json, log_json

if TYPE_CHECKING:
    from ._server import Server

EVENTS_TICK_S = 0.5
"""A stream (or long poll) of events wakes on each recorded event, and this often to see if its
client left and to count its silence."""
LOGS_TICK_S = 0.1
"""The recorder does not signal recorded log lines: a stream (or long poll) of logs looks this often."""
KEEP_ALIVE_S = 15.0
"""A stream with nothing to say says ``: keep-alive`` this often (the SDK's socket timeout is 60 s)."""
STREAM_BATCH = 1000
LOGS_RECORDED_S = 5.0
"""At a run's end, how long its log stream waits for the recorder to catch up with the log lines."""


async def event_stream(server: Server, run_id: str, after: int) -> AsyncIterator[bytes]:
    """The run's events after ``after``, then each as it is recorded; ``end`` once the run has ended
    and all its events were sent. It stops (without ``end``) when the server stops."""
    store = server.kernel.store
    recorder = server.kernel.recorder
    assert store is not None
    quiet = 0.0
    while not server.stopping.is_set():
        seen = recorder.recorded_seq if recorder is not None else 0
        # The status first: a run read as ended has all its events recorded (the same transaction).
        info = await asyncio.to_thread(store.run, run_id)
        batch = await asyncio.to_thread(store.events, run_id, after, None, STREAM_BATCH)
        for e in batch:
            yield sse.encode("event", event_json(e), e.seq)
        if batch:
            after, quiet = batch[-1].seq, 0.0
            continue
        if info.status in RUN_ENDED:
            yield _end(info)
            return
        quiet = await _keep_alive(server, seen, EVENTS_TICK_S, quiet)
        if quiet == 0.0:
            yield sse.KEEP_ALIVE


async def log_stream(server: Server, run_id: str, component: str | None, after: int) -> AsyncIterator[bytes]:
    """The run's log lines (of ``component``) after the log seq ``after``, then as they are recorded;
    ``end`` once the run has ended and the recorder has every line published before that."""
    kernel = server.kernel
    store = kernel.store
    assert store is not None
    quiet = 0.0
    caught_up = False
    while not server.stopping.is_set():
        info = await asyncio.to_thread(store.run, run_id)
        if info.status in RUN_ENDED and not caught_up:
            # Lines travel on a stream of their own: those printed before the end may still come.
            if kernel.recorder is not None and kernel.bus is not None:
                with contextlib.suppress(Exception):  # NATS gone: what is recorded is all there is
                    await kernel.recorder.wait_logs_recorded(await kernel.bus.last_log_seq(), LOGS_RECORDED_S)
            caught_up = True
        batch = await asyncio.to_thread(store.logs, run_id, component, after, STREAM_BATCH)
        for line in batch:
            yield sse.encode("log", log_json(line), line.seq)
        if batch:
            after, quiet = batch[-1].seq, 0.0
            continue
        if caught_up:
            yield _end(info)
            return
        await asyncio.sleep(LOGS_TICK_S)
        quiet += LOGS_TICK_S
        if quiet >= KEEP_ALIVE_S:
            quiet = 0.0
            yield sse.KEEP_ALIVE


def _end(info: Any) -> bytes:
    return sse.encode(
        "end", {"run": info.id, "status": info.status, "message": info.message, "seq": info.last_seq}
    )


async def _keep_alive(server: Server, seen: int, tick: float, quiet: float) -> float:
    """Wait for a recorded event (``tick`` s at most); the seconds of silence since the last message,
    0.0 when it is time for a keep-alive."""
    await server._news(seen, tick)
    quiet += tick
    return 0.0 if quiet >= KEEP_ALIVE_S else quiet
