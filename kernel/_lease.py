"""Leases: one kernel drives a run, one kernel records into a database, and workers know both are alive.

A lease is a key of the JetStream key-value bucket ``lk_leases`` (``run.<run id>``, ``recorder.<db id>``)
whose value names its holder. It is taken with a create that fails when the key holds a value, renewed
every third of the bucket's TTL with an update that names the revision it last wrote (so a kernel that
lost its lease learns it at the next renewal and stops at once), and it lapses by itself: the bucket's
``max_age`` makes the server drop a key nobody renewed for one TTL (10 s by default, ``LK_LEASE_S``).

Why JetStream KV and not a row in SQL: a run lives in the stream, and every kernel that could drive it
(whatever database it records into) and every worker (which never sees the database) already talks to
that NATS; the server's own clock expires the lease, so no two hosts' clocks are ever compared; and a
renewal is one request on a connection that is already open: about 0.2 ms here, every 3.3 s, per run
(``python bench/kernel_latency.py`` prints the figures; start-up pays one bucket lookup and one create,
about 2 ms). A SQL lease would need workers to reach the database, and PostgreSQL's and SQLite's
clocks (or the kernels') to agree on expiry.

A holder that died on this host (its pid is gone, or was reused by a newer process) is taken over at
once, so ``resume`` right after a ``kill -9`` needs no wait; one elsewhere lapses after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lightning_kernel.executors._proc import process_start

from ._bus import Bus, KeyExists, WrongRevision
from .errors import LeaseHeld

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 10.0


def lease_seconds() -> float:
    """The TTL a kernel asks for when it makes the lease bucket (``LK_LEASE_S``)."""
    return float(os.environ.get("LK_LEASE_S", DEFAULT_LEASE_S))


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a kernel, by its id, process and host."""

    kernel: str
    host: str
    pid: int
    since: float
    boot: str = ""
    pid_start: str = ""
    data_dir: str = ""

    @classmethod
    def this_process(cls, kernel: str, data_dir: str = "") -> Holder:
        pid = os.getpid()
        return cls(
            kernel=kernel,
            host=socket.gethostname(),
            pid=pid,
            since=time.time(),
            boot=_boot_id(),
            pid_start=process_start(pid),
            data_dir=data_dir,
        )

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder:
        try:
            raw = json.loads(data)
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError, KeyError):
            return cls(kernel="?", host="?", pid=0, since=0.0)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since)) if self.since else "?"
        where = f" (data dir {self.data_dir})" if self.data_dir else ""
        return f"the kernel pid {self.pid} on host {self.host}{where}, since {when}"

    def is_dead_here(self) -> bool:
        """True when the holder ran on this machine, since its last boot, and is gone."""
        if self.host != socket.gethostname() or not self.boot or self.boot != _boot_id():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, as another user
        return bool(self.pid_start) and process_start(self.pid) != self.pid_start


@dataclass
class Lease:
    key: str
    revision: int
    renewed_at: float = 0.0
    """``time.monotonic()`` of the last write that the server accepted."""
    sent_at: float = 0.0
    """``time.monotonic()`` when that write was sent: the server keeps the key one TTL after it took
    the write, so at least until ``sent_at`` + TTL (``Leases.fresh``)."""
    renewing: bool = False
    """A renewal of it is in flight (on the renewal thread)."""


class Leases:
    """The leases one kernel holds, renewed together by one task.

    With ``renew_on`` (the NATS URL and token), renewals run on a thread with a connection of its
    own: a flow whose ``root.run()`` blocks the kernel's event loop for longer than the lease (the
    flow runs on the loop, see ``_loop``) must not lose its run for it. ``on_lost`` is still called
    on the loop that made the ``Leases``."""

    def __init__(
        self,
        bus: Bus,
        holder: Holder,
        on_lost: Callable[[str, str], None],
        ttl: float | None = None,
        renew_on: tuple[str, str | None] | None = None,
    ) -> None:
        self.bus = bus
        self.holder = holder
        self.on_lost = on_lost
        """Called with ``(key, why)`` when a lease could not be renewed: its work must stop at once."""
        self.ttl = ttl or lease_seconds()
        self._held: dict[str, Lease] = {}
        self._task: asyncio.Task[None] | Any = None
        self._value = holder.encode()
        self._renew_on = renew_on
        self._renewer: _RenewalThread | None = None
        self._lock = threading.Lock()
        """Guards ``_held`` between the loop and the renewal thread."""
        self._released: dict[str, Lease] = {}
        """Leases let go while a renewal of theirs was in flight: the renewal deletes them after."""

    async def start(self) -> None:
        """Make (or find) the lease bucket; its TTL, the first kernel's choice, is the lease's."""
        self.ttl = await self.bus.lease_bucket(self.ttl)

    async def acquire(self, key: str, what: str) -> Lease:
        """Take ``key``, or raise ``LeaseHeld`` naming its holder; ``what`` says what it guards."""
        sent = time.monotonic()
        try:
            revision = await self.bus.kv_create(key, self._value)
        except KeyExists as held:
            holder = Holder.decode(held.value)
            if holder.kernel == self.holder.kernel:
                revision = held.revision
            elif holder.is_dead_here():
                try:
                    revision = await self.bus.kv_update(key, self._value, held.revision)
                except WrongRevision:
                    raise LeaseHeld(
                        what, "another kernel that took it at the same moment", self.ttl
                    ) from None
                log.info("%s: took over from %s, which is gone", what, holder.describe())
            else:
                raise LeaseHeld(what, holder.describe(), self.ttl) from None
        with self._lock:
            current = self._held.get(key)
            if current is not None and current.revision == revision:
                return current
            lease = self._held[key] = Lease(key, revision, time.monotonic(), sent)
        if self._task is None:
            if self._renew_on is not None:
                self._renewer = _RenewalThread(self, *self._renew_on, asyncio.get_running_loop())
                self._task = self._renewer.start()
            else:
                self._task = asyncio.create_task(self._renew_forever(self.bus), name="lease-renewal")
        return lease

    def holds(self, key: str) -> bool:
        return key in self._held

    def fresh(self, key: str) -> bool:
        """Whether ``key`` is held and surely still this kernel's on the server: its last accepted
        write was sent less than 90% of the TTL ago. A kernel that was paused (SIGSTOP, a VM frozen)
        or cut off learns that it lost a lease only at its next renewal; until then this says it
        must not act for it, since another kernel may have taken it already."""
        lease = self._held.get(key)
        return lease is not None and time.monotonic() - lease.sent_at < self.ttl * 0.9

    def age(self, key: str) -> float:
        """Seconds since the last accepted write of ``key`` was sent (inf when it is not held)."""
        lease = self._held.get(key)
        return float("inf") if lease is None else time.monotonic() - lease.sent_at

    async def release(self, key: str) -> None:
        with self._lock:
            lease = self._held.pop(key, None)
            if lease is not None and lease.renewing:
                self._released[key] = lease  # its renewal deletes it with the revision it gets
                return
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.bus.kv_delete(key, last=lease.revision)

    async def _renew_forever(self, bus: Bus) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self.renew_all(bus)

    async def renew_all(self, bus: Bus | None = None) -> None:
        """One round of renewals, every lease at once (pipelined on the one connection)."""
        with self._lock:
            held = list(self._held.items())
            for _, lease in held:
                lease.renewing = True
        await asyncio.gather(*(self._renew(bus or self.bus, key, lease) for key, lease in held))

    async def _renew(self, bus: Bus, key: str, lease: Lease) -> None:
        sent = time.monotonic()
        lost = ""
        try:
            revision = await asyncio.wait_for(bus.kv_update(key, self._value, lease.revision), self.ttl / 3)
            with self._lock:
                lease.revision, lease.renewed_at, lease.sent_at = revision, time.monotonic(), sent
        except WrongRevision:
            lost = "another kernel holds it now"
        except (asyncio.TimeoutError, Exception) as exc:
            log.debug("renewing %s failed: %s", key, exc)
            if time.monotonic() - lease.renewed_at >= self.ttl:
                # The server has let it lapse by now: another kernel may hold it.
                why = str(exc) or (
                    f"NATS did not answer in {self.ttl / 3:.1f} s"
                    if isinstance(exc, asyncio.TimeoutError)
                    else type(exc).__name__
                )
                lost = f"it could not be renewed for {self.ttl:.0f} s: {why}"
        with self._lock:
            lease.renewing = False
            released = self._released.pop(key, None) is lease
            if lost and self._held.get(key) is lease:
                del self._held[key]
            else:
                lost = ""
        if released:
            with contextlib.suppress(Exception):
                await bus.kv_delete(key, last=lease.revision)
        if lost:
            self._lost(key, lost)

    def _lost(self, key: str, why: str) -> None:
        if self._renewer is not None:
            self._renewer.owner.call_soon_threadsafe(self.on_lost, key, why)
        else:
            self.on_lost(key, why)

    async def close(self) -> None:
        if self._renewer is not None:
            await asyncio.to_thread(self._renewer.stop)
        elif self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for key in list(self._held):
            await self.release(key)
        for key, lease in list(self._released.items()):
            with contextlib.suppress(Exception):
                await self.bus.kv_delete(key, last=lease.revision)
        self._released.clear()


class _RenewalThread:
    """An event loop on a thread of its own, with its own NATS connection, that renews the leases."""

    def __init__(self, leases: Leases, url: str, token: str | None, owner: asyncio.AbstractEventLoop) -> None:
        self.leases = leases
        self.url = url
        self.token = token
        self.owner = owner
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="lk-lease-renewal", daemon=True)
        self._future: Any = None
        self._stop = asyncio.Event()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> Any:
        self._thread.start()
        self._future = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        return self._future

    async def _run(self) -> None:
        bus = await Bus.connect(self.url, self.token, name="lightning-kernel-leases", probe=False)
        try:
            await bus.lease_bucket(self.leases.ttl)
            renewing = asyncio.ensure_future(self.leases._renew_forever(bus))
            await self._stop.wait()
            renewing.cancel()
            with contextlib.suppress(BaseException):
                await renewing
        finally:
            await bus.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        if self._future is not None:
            with contextlib.suppress(BaseException):
                self._future.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def run_key(run_id: str) -> str:
    return f"run.{run_id}"


def recorder_key(db_id: str) -> str:
    return f"recorder.{db_id}"


def new_kernel_id() -> str:
    return secrets.token_hex(6)


async def holder_of(bus: Bus, key: str) -> Holder | None:
    entry = await bus.kv_get(key)
    return None if entry is None else Holder.decode(entry[0])
