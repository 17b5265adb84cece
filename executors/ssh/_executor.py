"""Works on the user's own machines over SSH: no shared filesystem, no S3, no open port but SSH.

A worker is the shared worker runtime (``python -m lightning_kernel._worker``) started on a host that
matches the Work's CloudCompute (``_placement``), through the executor's one connection to that host
(``_link``). What it needs of the kernel comes through that connection: NATS through a remote port
forward on the host's loopback, the artifact store itself when it is S3 (endpoint and credentials in
its spec), else through the kernel's relay (``_relay``), and its code as the ``code`` artifact,
unpacked once per content hash in the host's cache.

Launch: one ``sh`` command writes the spec (0600; it holds the NATS token and any S3 credentials) under
``~/.lightning-kernel/ssh/<run>/<work>/`` and starts the worker under its parent (``_handle.WRAPPER``),
in a session and process group of its own, detached from the channel: a dropped connection does not
kill it, its lease on the kernel does (it stops once the kernel is gone for the lease's length, and its
parent ends what it left in the group). Its ref is ``{host, pid, start}`` (start: the process's start
time, so a reused pid is never taken for it) plus what the kernel needs to take it back: its parent's
pid, the forwarded NATS port, its folder and the CPUs and GPUs it holds. Watching and stopping it:
``_handle``. A lost connection is reconnected (the same forwarded port, so the worker's NATS client
gets back in); a worker whose host cannot be reached again within its lease is ``lost``.

Prints: the worker publishes its lines to the log stream like any worker (``logs`` reads them); the
executor echoes them to the kernel's terminal from that stream, which a re-attached worker keeps
doing into, as no channel does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from lightning_kernel._compute import requested
from lightning_kernel.errors import ExecutorError
from lightning_kernel.executors import Executor, WorkerHandle, WorkerSpec
from lightning_kernel.executors._echo import KernelNats
from lightning_kernel.executors._proc import stat_start
from lightning_kernel.executors._spec import CARRIED_ENV

from ._config import SshConfig
from ._handle import SSH_DIR, SWEEP, WRAPPER, SshHandle, _quote_home
from ._link import HostLink, HostUnreachable
from ._placement import Placement, Slot
from ._relay import Relay

log = logging.getLogger(__name__)


class SshExecutor(Executor):
    name = "ssh"

    def __init__(self, config: SshConfig) -> None:
        self.config = config
        self.links = {h.name: HostLink(h, config) for h in config.hosts}
        self.placement = Placement(config.hosts)
        self._setup_done: dict[str, asyncio.Task[str]] = {}
        self._kernel = KernelNats("lk-ssh-executor")
        self._relay: Relay | None = None
        self._subs: dict[int, list[Any]] = {}
        """Per handle: its log echo and its status watch (NATS subscriptions)."""
        self._handles: set[SshHandle] = set()
        self._changed: asyncio.Event | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- resources ------------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _ended(self, handle: SshHandle) -> None:
        self.placement.release(handle.slot)
        self._handles.discard(handle)
        for sub in self._subs.pop(id(handle), []):
            task = asyncio.ensure_future(sub.unsubscribe())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._wake()

    def _reclaim(self, name: str, asked: dict[str, float]) -> bool:
        """Stop one idle worker (its last call finished; its Paths were persisted then) on a host that
        a waiting Work could use, so that its CPUs and GPUs go to that Work; its own next call starts
        a new worker. True when one is being stopped (the caller waits for the change)."""
        hosts = set(self.placement.candidates(name, asked))
        if any(h.reclaimed and not h.ended for h in self._handles):
            return True  # one is on its way out already
        for h in sorted(self._handles, key=lambda h: h.slot.gpus == () and asked.get("gpus", 0) > 0):
            if h.idle and not h.reclaimed and not h.ended and h.slot.host in hosts:
                h.reclaimed = True
                task = asyncio.ensure_future(h.terminate())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return True
        return False

    async def _reserve(self, name: str, asked: dict[str, float]) -> Slot:
        if self._changed is None:
            self._changed = asyncio.Event()
        # Refuses at once what no host can ever hold; hosts whose CPU count is not configured are
        # counted once reached.
        for host in self.placement.candidates(name, asked):
            if not self.placement.cpus_known(host):
                with contextlib.suppress(ExecutorError):
                    probed = await self.links[host].probe()
                    self.placement.set_cpus(host, int(probed["cpus"]))
        said = ""
        while True:
            slot = self.placement.take(name, asked)
            if slot is not None:
                return slot
            why = self.placement.busy(name, asked)
            if why != said:
                self.pending(why)
                said = why
            self._changed.clear()
            if self._reclaim(name, asked):
                log.info("%s; stopping an idle worker for it", why)
            await self._changed.wait()

    # -- the kernel's side: NATS, the relay, the echo ---------------------------------------------------

    async def _nats(self, spec: WorkerSpec) -> Any:
        before = self._kernel.nc
        nc = await self._kernel.connect(spec)
        if nc is not before:
            self._relay = None  # it served on the connection to another kernel's NATS
        return nc

    async def _store_for(self, spec: WorkerSpec, host: str) -> str:
        parts = urlsplit(spec.artifacts)
        if parts.scheme not in ("", "file"):
            return spec.artifacts  # S3: the worker talks to it itself
        nc = await self._nats(spec)
        if self._relay is None:
            self._relay = Relay(
                nc, os.path.abspath(parts.path if parts.scheme else spec.artifacts), self.links.__getitem__
            )
        await self._relay.serve(host)
        return self._relay.url(host)

    async def _follow(self, spec: WorkerSpec, handle: SshHandle) -> None:
        """Echo the worker's printed lines (as a local Work's reach the terminal), and keep up with
        whether it is between calls."""
        await self._nats(spec)
        subs = self._subs.setdefault(id(handle), [])

        def on_change(idle: bool) -> None:
            handle.idle = idle
            if idle:
                self._wake()

        if spec.echo:
            subs.append(await self._kernel.echo(spec))
        subs.append(await self._kernel.idle_watch(spec, int(handle.ref.get("attempt", 0)), on_change))

    # -- set-up of a host, once per kernel start ----------------------------------------------------

    async def _setup(self, link: HostLink) -> str:
        if not link.host.setup:
            return ""
        task = self._setup_done.get(link.name)
        first = task is None
        if task is None:
            task = self._setup_done[link.name] = asyncio.ensure_future(self._run_setup(link))
        try:
            out = await asyncio.shield(task)
        except ExecutorError:
            raise
        return out if first else ""

    async def _run_setup(self, link: HostLink) -> str:
        lines: list[str] = []
        for command in link.host.setup:
            status, out, err = await link.run(f"cd ~ && {command}", timeout=3600)
            lines.append(f"$ {command}  (setup on {link.name})\n{out}{err}")
            if status != 0:
                self._setup_done.pop(link.name, None)
                raise ExecutorError(
                    f"{link.describe()}: setup command {command!r} exited with {status}:\n"
                    + "".join(lines)[-3000:]
                )
        return "".join(lines)

    # -- the executor API ------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Reach every host in the background (connection, version check) while the kernel starts,
        so the first Work does not wait for it; a host that fails says so when a Work needs it."""
        for link in self.links.values():
            task = asyncio.ensure_future(self._warm(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _warm(self, link: HostLink) -> None:
        try:
            probed = await link.probe()
            self.placement.set_cpus(link.name, int(probed["cpus"]))
            await link.run(SWEEP, timeout=60)
        except Exception as exc:
            log.debug("%s: not reached at start: %s", link.describe(), exc)

    async def start(self, spec: WorkerSpec) -> SshHandle:
        name = str(spec.compute.get("name") or "default")
        try:
            asked = requested(spec.compute)
        except ValueError as exc:
            raise ExecutorError(str(exc)) from exc
        while True:
            slot = await self._reserve(name, asked)
            try:
                return await self._launch(spec, slot)
            except HostUnreachable as exc:
                # A host that is off or cut off: the Work goes to another matching host if one answers.
                self.placement.release(slot)
                self.placement.mark_down(slot.host, str(exc))
                log.warning("%s; placing %s elsewhere", exc, spec.work)
                self._wake()
            except BaseException:
                self.placement.release(slot)
                self._wake()
                raise

    async def _launch(self, spec: WorkerSpec, slot: Slot) -> SshHandle:
        link = self.links[slot.host]
        await link.probe()
        preamble = await self._setup(link)
        nats = urlsplit(spec.nats_url.split(",")[0])
        port = await link.nats_port(nats.hostname or "127.0.0.1", nats.port or 4222)
        env = dict(spec.env)
        env.update(link.host.env)
        if slot.gpus:
            env["CUDA_VISIBLE_DEVICES"] = slot.cuda_visible_devices
        elif link.host.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a Work that asked for none sees none of the host's
        artifacts = await self._store_for(spec, link.name)
        if artifacts == spec.artifacts:
            env.update({k: os.environ[k] for k in CARRIED_ENV if k in os.environ and k not in env})
        remote = replace(
            spec,
            nats_url=f"nats://127.0.0.1:{port}",
            artifacts=artifacts,
            env=env,
            echo=False,
            preamble=(spec.preamble + preamble),
        )
        folder = f"~/{SSH_DIR}/{spec.run_id}/{spec.work}"
        d, a = _quote_home(folder), spec.attempt
        py = shlex.quote(link.host.python)
        work_dir = ""
        if link.host.work_dir:
            work_dir = f"LK_WORK_DIR={_quote_home(link.host.work_dir)} "
        worker = f"{py} -m lightning_kernel._worker --spec-file {d}/spec-{a}"
        # mkdir again once: a worker of the run that ends removes its empty folders as this one makes them.
        command = (
            f"umask 077; mkdir -p {d} || mkdir -p {d} || exit 1; cat > {d}/spec-{a} || exit 1; rm -f {d}/pid-{a} {d}/exit-{a}; "
            f"cd ~ || exit 1\n"
            f"{work_dir}setsid sh -c {shlex.quote(WRAPPER)} lk-worker {d} {a} {worker} "
            f"> {d}/log-{a} 2>&1 < /dev/null &\n"
            f"w=$!; i=0; while [ ! -s {d}/pid-{a} ] && [ $i -lt 2000 ]; do sleep 0.005; i=$((i+1)); done\n"
            f'echo "$w"; p=$(cat {d}/pid-{a}); echo "$p"; cat /proc/$p/stat'
        )
        status, out, err = await link.run(command, input=remote.to_json(), timeout=60)
        lines = out.strip().splitlines()
        if status != 0 or len(lines) < 3 or not lines[0].isdigit() or not lines[1].isdigit():
            raise ExecutorError(
                f"{link.describe()}: starting the worker failed (exit {status}): {(err or out).strip()[-500:]}"
            )
        ref = {
            "host": link.name,
            "pid": int(lines[1]),
            "start": stat_start(lines[2]),
            "pgid": int(lines[0]),
            "dir": folder,
            "attempt": a,
            "nats_port": port,
            "cpus": slot.cpus,
            "gpus": list(slot.gpus),
        }
        handle = SshHandle(self._ended, link, spec.work, ref, slot, spec.lease_s)
        self._handles.add(handle)
        with contextlib.suppress(Exception):
            await self._follow(spec, handle)
        handle.watch()
        return handle

    async def attach(self, ref: dict[str, Any]) -> WorkerHandle | None:
        link = self.links.get(str(ref.get("host", "")))
        pid, start = ref.get("pid"), ref.get("start")
        if link is None or not isinstance(pid, int) or not start:
            return None
        try:
            _, out, _ = await link.run(f"cat /proc/{pid}/stat 2>/dev/null", timeout=30)
        except ExecutorError as exc:
            log.info("re-attaching the worker on %s: %s", link.describe(), exc)
            return None
        if stat_start(out) != start:
            return None
        spec = self.attaching()
        lease_s = 10.0
        if spec is not None:
            # A restarted kernel: the worker reaches NATS through the port it was given; that port
            # must lead to this kernel's NATS, and the relay and the echo must answer for it again.
            nats = urlsplit(spec.nats_url.split(",")[0])
            try:
                await link.nats_port(
                    nats.hostname or "127.0.0.1", nats.port or 4222, prefer=int(ref["nats_port"])
                )
                await self._store_for(spec, link.name)
            except (ExecutorError, KeyError, ValueError) as exc:
                log.warning("re-attaching the worker on %s: %s", link.describe(), exc)
                return None
            lease_s = spec.lease_s
        slot = self.placement.claim(link.name, float(ref.get("cpus", 1.0)), tuple(ref.get("gpus", [])))
        handle = SshHandle(self._ended, link, spec.work if spec else "", dict(ref), slot, lease_s)
        self._handles.add(handle)
        if spec is not None:
            with contextlib.suppress(Exception):
                await self._follow(spec, handle)
        handle.watch()
        return handle

    async def close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        for subs in list(self._subs.values()):
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._subs.clear()
        await self._kernel.close()
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
