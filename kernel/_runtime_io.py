"""The worker's link to NATS: a background asyncio thread with one ordered publisher.

User code runs on the main thread; everything it publishes goes through one queue to one task, so
events leave in the order they were made, pipelined (no wait for each ack), and ``barrier()``
waits until every one of them is acknowledged by the stream.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._bus import Bus
from ._codec import encode
from ._events import Event
from ._process import quiet_signals
from ._records import EventRecord

T = TypeVar("T")
_BARRIER = object()
_MAX_PENDING = 20_000


class BusThread:
    def __init__(self, url: str, token: str | None, run_id: str, source: str, attempt: int = 0) -> None:
        self.run_id = run_id
        self.source = source
        self.fenced = False
        """Set once a newer attempt owns the Work: nothing more is published."""
        self.attempt = attempt
        """Stamped on every event this thread publishes (the worker's attempt; see ``encode``)."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="lk-bus", daemon=True)
        self._thread.start()
        self.bus: Bus = self.call(Bus.connect(url, token, name=source))
        # User code appends here (deque appends are atomic) and wakes the publisher only when it
        # sleeps: one wake-up per burst, not one thread hand-off per event.
        self._items: collections.deque[Any] = collections.deque()
        self._asleep = True
        self._wake: asyncio.Event = self.call(self._make_event())
        self._publisher = asyncio.run_coroutine_threadsafe(self._publish_loop(), self.loop)

    def _serve(self) -> None:
        # SIGTERM and SIGINT are for the main thread, where user code runs: a process-directed signal
        # that landed on this thread would not interrupt a main thread blocked in a system call.
        # (Threads this one starts, the loop's executor, inherit the mask.)
        quiet_signals()
        self.loop.run_forever()

    async def _make_event(self) -> asyncio.Event:
        return asyncio.Event()

    def _put(self, item: Any) -> None:
        self._items.append(item)
        if self._asleep:
            self._asleep = False
            self.loop.call_soon_threadsafe(self._wake.set)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def max_payload(self) -> int:
        """The biggest message the server takes, in bytes."""
        return int(self.bus.nc.max_payload)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for publishing; returns at once."""
        self._put(event)

    def log(self, stream: str, line: str) -> None:
        data = json.dumps({"t": time.time(), "s": stream, "l": line}).encode()
        self._put(("log", data))

    def barrier(self, timeout: float | None = 30.0) -> None:
        """Wait until everything emitted so far is acknowledged.

        If NATS goes away meanwhile (the kernel died with its embedded server), acks can no longer
        come: the wait ends 2 s after the connection is seen lost, without an error.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._put((_BARRIER, done))
        deadline = None if timeout is None else time.monotonic() + timeout
        lost_at: float | None = None
        while True:
            try:
                done.result(0.1)
                return
            except concurrent.futures.TimeoutError:
                now = time.monotonic()
                if not self.bus.nc.is_connected:
                    lost_at = lost_at or now
                    if now - lost_at >= 2.0:
                        return
                else:
                    lost_at = None
                if deadline is not None and now >= deadline:
                    raise

    async def _publish_loop(self) -> None:
        pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        failure: BaseException | None = None  # the first publish the stream refused since the barrier
        since_yield = 0
        while True:
            if not self._items:
                self._wake.clear()
                self._asleep = True
                if not self._items:  # an emit between the check and the flag went unannounced
                    await self._wake.wait()
                continue
            item = self._items.popleft()
            if self.fenced and not (isinstance(item, tuple) and item[0] is _BARRIER):
                continue
            if isinstance(item, Event):
                try:
                    encoded = encode(item, self.run_id, self.source, attempt=self.attempt)
                except Exception as exc:  # not JSON: the next barrier says so, the loop goes on
                    failure = failure or exc
                    continue
                try:
                    pending.append(await self.bus.send(*encoded))
                except Exception as exc:  # refused before it left (too big, connection closed)
                    failure = failure or exc
                    continue
                if len(pending) > _MAX_PENDING:
                    await asyncio.wait([pending[0]])  # the stream is behind: let it catch up
                while pending and pending[0].done():
                    acked = pending.popleft()
                    if failure is None and acked.exception() is not None:
                        failure = acked.exception()
                since_yield += 1
                if since_yield >= 256:
                    since_yield = 0
                    await asyncio.sleep(0)  # let the acks in
            elif item[0] == "log":
                await self.bus.publish_log(self.run_id, self.source, item[1])
            else:
                _, done = item
                try:
                    await asyncio.gather(*pending)
                    if failure is not None:
                        raise failure
                    await self.bus.nc.flush()
                    done.set_result(None)
                except Exception as exc:
                    done.set_exception(exc)
                pending.clear()
                failure = None

    def last_event(self, subject: str) -> dict[str, Any] | None:
        """The payload of the newest event on ``subject``, None if there is none."""
        return self.call(self.bus.last_event(subject), timeout=30)

    def publish_now(self, event: Event) -> int:
        """Publish ``event`` at once (not behind the queue) and return its stream sequence."""
        return self.call(self.bus.publish(self.run_id, event, self.source), timeout=30)

    def follow(self, subject: str, start_seq: int, handler: Callable[[EventRecord], None]) -> Any:
        """Call ``handler`` (on the bus thread) for every event on ``subject`` from ``start_seq``;
        returns the subscription, for :meth:`unfollow`."""
        return self.call(self.bus.follow(subject, start_seq, handler))

    def listen(self, subject: str, handler: Callable[[dict[str, Any]], None]) -> Any:
        """Call ``handler`` (on the bus thread) with each event payload published on ``subject`` from
        now on; returns the subscription, for :meth:`unfollow`."""
        return self.call(self.bus.listen(subject, handler), timeout=30)

    def watch_lease(self, key: str, lease_s: float, gone: Callable[[str], None]) -> None:
        """Call ``gone(why)`` (once, on the bus thread) when lease ``key`` is gone, or NATS has been
        unreachable for ``lease_s``: the kernel that holds the run is no more."""

        async def watch() -> None:
            ok_at = time.monotonic()
            while True:
                await asyncio.sleep(min(1.0, lease_s / 4))
                try:
                    entry = await asyncio.wait_for(self.bus.kv_get(key), min(2.0, lease_s / 2))
                except Exception as exc:
                    if time.monotonic() - ok_at >= lease_s:
                        gone(f"the kernel has been unreachable for {lease_s:.0f} s ({type(exc).__name__})")
                        return
                    continue
                if entry is None:
                    gone(f"the kernel's lease on the run lapsed (no kernel renewed it for {lease_s:.0f} s)")
                    return
                ok_at = time.monotonic()

        self._watch = asyncio.run_coroutine_threadsafe(watch(), self.loop)

    def unfollow(self, sub: Any) -> None:
        with contextlib.suppress(Exception):
            self.call(sub.unsubscribe(), timeout=5)

    def close(self) -> None:
        self._publisher.cancel()
        try:
            self.call(self.bus.close(), timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
