"""How a Work's storage calls reach other Works through the event log.

A running Work's Paths on request: the consumer (``Path.get()``, ``exists_remote()``, or the
transfer before its ``run()``) publishes a ``work.persist_requested`` command to the origin Work and
waits for the answer, a ``work.record`` of kind ``path.persist_answered`` with its request id. The
origin's worker answers from a thread of its own while its ``run()`` goes on: it persists the Paths
that hold the requested path, then answers; an origin between calls answers at once (its files were
persisted when its last call ended), and the kernel answers for an origin that has no worker. Then
the consumer reads the origin's latest persisted record from the store. Before asking, the consumer
looks at the origin's newest event: the end of a call means its files are persisted already.

Waiting for files: ``watch`` wakes a ``Drive.get(timeout=...)`` when any Work puts into the Drive.
Nothing polls: every step is an event.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._codec import new_event_id
from ._events import PERSIST_ANSWERED, PathPersistRequested, WorkRecord, WorkStatusChanged, work_token
from ._runtime_io import BusThread
from ._status import FINISHED_STAGES

ANSWER_TIMEOUT = float(os.environ.get("LK_PERSIST_ANSWER_TIMEOUT", "60"))
"""Seconds a consumer waits for an origin to answer before taking what it last persisted (an origin
whose worker is alive but wedged; a dead one is answered for by the kernel at once)."""


def ask(
    io: BusThread, run_id: str, requester: str, origin: str, lit_path: str, timeout: float | None
) -> None:
    """Make sure ``origin`` has persisted ``lit_path`` as it is now; returns once it has answered
    (or after the timeout). The caller then reads the origin's latest record from the store.

    An origin whose newest event is the end of a call is between calls: its files were persisted
    before that event, so one look at the stream answers without asking it; one with no event at
    all has nothing to persist.
    """
    subject = f"lk.{run_id}.evt.{work_token(origin)}"
    last = io.last_event(subject)
    if last is None:
        return
    if last.get("type") == WorkStatusChanged.TYPE and last.get("body", {}).get("stage") in FINISHED_STAGES:
        return
    request = new_event_id()
    answered = threading.Event()

    def on_record(payload: dict[str, Any]) -> None:
        data = payload.get("body", {}).get("data") or {}
        if payload.get("type") == WorkRecord.TYPE and data.get("request") == request:
            answered.set()

    # Listening before asking: the answer comes after the request, on the origin's event subject.
    sub = io.listen(subject, on_record)
    try:
        io.publish_now(PathPersistRequested(work=origin, path=lit_path, request=request, requester=requester))
        answered.wait(ANSWER_TIMEOUT if timeout is None else timeout)
    finally:
        io.unfollow(sub)


def answer(
    io: BusThread, name: str, work: Any, ctx: Any, request: PathPersistRequested, persisting: threading.Lock
) -> None:
    """Persist what ``request`` asks for and publish the answer. ``ctx`` is the storage context while
    the Work's code runs, None otherwise; ``persisting`` is held by whoever persists the Work's Paths
    (an answer between calls waits for the end-of-call persist). Runs on a thread of its own."""
    from lightning_kernel.storage._confine import lit_ancestors
    from lightning_kernel.storage._context import using
    from lightning_kernel.storage._persist import find_paths, persist_paths

    persisted, reason = False, "between calls: the files persisted when the last call ended stand"
    with persisting:
        if ctx is not None:
            try:
                wanted = set(lit_ancestors(request.path))
                own = [p for p in find_paths(list(vars(work).values())) if p._origin in (None, name)]
                paths = [p for p in own if p.lit in wanted]
                if paths:
                    with using(ctx):
                        persist_paths(paths)
                    persisted, reason = True, ""
                else:
                    reason = f"{name} holds no Path at {request.path}"
            except Exception as exc:  # the consumer takes what was persisted before, and says why
                reason = f"persisting failed: {type(exc).__name__}: {exc}"
    data = {"request": request.request, "path": request.path, "persisted": persisted, "reason": reason}
    io.emit(WorkRecord(work=name, kind=PERSIST_ANSWERED, data=data))


@contextmanager
def watch(io: BusThread, predicate: Callable[[str, dict[str, Any]], bool]) -> Iterator[threading.Event]:
    """An event set, while the block runs, when any Work of any run on this NATS publishes a
    storage record ``(kind, data)`` that ``predicate`` accepts."""
    happened = threading.Event()

    def on_payload(payload: dict[str, Any]) -> None:
        if payload.get("type") == WorkRecord.TYPE:
            body = payload.get("body") or {}
            if predicate(str(body.get("kind", "")), body.get("data") or {}):
                happened.set()

    sub = io.listen("lk.*.evt.>", on_payload)
    try:
        yield happened
    finally:
        io.unfollow(sub)
