"""The storage context: which store, run and Work the storage calls of this moment belong to.

The worker runtime sets it (``using(ctx)``) while a Work's ``run()`` executes and while it
restores, transfers or persists Paths. ``Path.get()``, ``Drive`` and ``Payload`` read it with
``current()``, so user code never passes stores or names around, and a call made where no Work runs
(the flow, an import) gets a clear error instead of touching the wrong files.

A ``contextvars.ContextVar`` rather than a global: the runtime may serve several Works' storage
calls from one process (tests do), and asyncio tasks each keep their own value. Threads that user
code starts do not inherit it; ``contextvars.copy_context().run`` carries it over.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from lightning_kernel.errors import KernelError

from ._artifacts import ArtifactStore

Publish = Callable[[str, dict[str, Any]], None]
"""``publish(event type, JSON body)``: record a storage event (``path.persisted``...)."""

WaitPersisted = Callable[[str, str, "float | None"], "dict[str, Any] | None"]
"""``wait_persisted(origin work, lit path, timeout)``: the record of the origin's latest persist of
that path (or of a folder that holds it), once the origin has persisted; None when it has nothing."""


class StorageContextError(KernelError):
    """A storage call made where no Work's ``run()`` executes."""


Watch = Callable[[Callable[[str, dict[str, Any]], bool]], AbstractContextManager[threading.Event]]
"""``watch(predicate)``: a context manager whose event is set, while the block runs, when any Work
publishes a storage record ``(kind, data)`` that ``predicate`` accepts (``drive.put``...)."""


def pointer_key(run_id: str, work_name: str, lit_path: str) -> str:
    """The document key of the latest manifest record of ``lit_path`` persisted by ``work_name``."""
    from ._confine import encode_lit

    return f"paths/{run_id}/{work_name}/{encode_lit(lit_path)}"


def latest_record(store: ArtifactStore, run_id: str, origin: str, lit_path: str) -> dict[str, Any] | None:
    """The latest persisted record covering ``lit_path``: its own, or the nearest parent folder's."""
    from ._confine import lit_ancestors

    for candidate in lit_ancestors(lit_path):
        record = store.read_json(pointer_key(run_id, origin, candidate))
        if record is not None:
            return dict(record)
    return None


def _drop(kind: str, body: dict[str, Any]) -> None:
    """The default ``publish``: storage works without an event log (tests, scripts)."""


@dataclass
class StorageContext:
    """What storage calls need to know about the Work they run in.

    ``wait_persisted`` defaults to reading the origin's latest pointer in the store, which is right
    when the origin has finished; the runtime replaces it with an event-driven one that asks a
    running origin to persist first and waits for its ``path.persisted`` event.
    """

    store: ArtifactStore
    run_id: str
    work_name: str
    work_root: str
    publish: Publish = _drop
    wait_persisted: WaitPersisted | None = None
    watch: Watch | None = None
    """None where no event log runs (storage used as a library): waits then check the store."""
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list, repr=False)
    """Every event this context published, in order (the runtime may also read them from here)."""

    def __post_init__(self) -> None:
        self.work_root = os.path.abspath(self.work_root)
        if self.wait_persisted is None:
            store, run_id = self.store, self.run_id

            def from_store(origin: str, lit_path: str, timeout: float | None) -> dict[str, Any] | None:
                return latest_record(store, run_id, origin, lit_path)

            self.wait_persisted = from_store

    def emit(self, kind: str, body: dict[str, Any]) -> None:
        """Publish a storage event through ``publish`` and keep it in ``records``."""
        self.records.append((kind, body))
        self.publish(kind, body)

    def wait_for(self, origin: str, lit_path: str, timeout: float | None) -> dict[str, Any] | None:
        assert self.wait_persisted is not None  # set in __post_init__
        if origin == self.work_name:
            # A Work asking for its own files must not ask itself to persist (it is busy asking).
            return latest_record(self.store, self.run_id, origin, lit_path)
        return self.wait_persisted(origin, lit_path, timeout)


_CURRENT: contextvars.ContextVar[StorageContext | None] = contextvars.ContextVar("lk_storage", default=None)


def current(action: str = "this storage call") -> StorageContext:
    """The context of the Work whose ``run()`` is executing; a clear error anywhere else."""
    ctx = _CURRENT.get()
    if ctx is None:
        raise StorageContextError(
            f"{action} can only be called inside a LightningWork's run(); in a LightningFlow, pass the "
            "Path, Drive or Payload to a Work's run() and use it there"
        )
    return ctx


def current_or_none() -> StorageContext | None:
    return _CURRENT.get()


@contextmanager
def using(ctx: StorageContext) -> Iterator[StorageContext]:
    """Make ``ctx`` the current storage context for the block."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)
