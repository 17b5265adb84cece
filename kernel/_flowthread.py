"""The one thread that runs flows' code, off the kernel's event loop.

A slow ``root.run()`` must hold up only its own run: the recorder, the leases' renewals, the HTTP API
and other runs go on, on the event loop. Flows take turns on this one thread (an iteration swaps
``sys.stdout`` to capture the flow's prints, so two must never overlap), and the thread is a daemon:
a ``root.run()`` that never returns cannot keep the process alive after SIGTERM. A hand-off costs a
few tens of microseconds (``bench/kernel_latency.py``: lag p50 unchanged within noise).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class FlowThread:
    """The one thread that runs flows' code, one iteration at a time (``sys.stdout`` is swapped for an
    iteration's printed lines, so two flows never run at once). A daemon: a ``root.run()`` that never
    returns cannot keep the process alive after SIGTERM."""

    _instance: FlowThread | None = None

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="lk-flow", daemon=True).start()

    @classmethod
    def get(cls) -> FlowThread:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _serve(self) -> None:
        while True:
            fn, loop, fut = self._jobs.get()
            try:
                result = fn()
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, fut, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)

    async def run(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((fn, loop, fut))
        return await fut


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
