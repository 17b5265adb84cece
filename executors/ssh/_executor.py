"""Works on the user's own machines over SSH: no shared filesystem, no S3, no open port but SSH.

A worker is the shared worker runtime (``python -m lightning_kernel._worker``) started on a host that
matches the Work's CloudCompute (``_placement``), through the executor's one connection to that host
(``_link``). What it needs of the kernel comes through that connection: NATS through a remote port
forward on the host's loopback, the artifact store itself when it is S3 (endpoint and credentials in
its spec), else through the kernel's relay (``_relay``), and its code as the ``code`` artifact,
unpacked once per content hash in the host's cache.

Launch: one ``sh`` command writes the spec (0600; it holds the NATS token and any S3 credentials) under
``~/.lightning-kernel/ssh/<run>/<work>/``, and starts the worker with ``setsid`` in its own session and
process group, its output in a log file there, detached from the channel: a dropped connection does
not kill it with SIGHUP or SIGPIPE, its lease on the kernel does (it stops once the kernel is gone for
the lease's length, then takes its process group with it). Its ref is ``{host, pid, start}`` (start:
the process's start time, so a reused pid is never taken for it) plus what the kernel needs to take it
back: the forwarded NATS port, its folder and the CPUs and GPUs it holds.

Watching: one exec channel per worker waits for its pid (``tail --pid``) and then reads the exit code
the worker wrote; killed by a signal, it wrote none. After it ends, whatever is left of its process
group is killed. A lost connection is reconnected (the same forwarded port, so the worker's NATS
client gets back in); a worker whose host cannot be reached again within its lease is ``lost``.

Prints: the worker publishes its lines to the log stream like any worker (``logs`` reads them); the
executor echoes them to the kernel's terminal from that stream, which a re-attached worker keeps
doing into, as no channel does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from lightning_kernel._compute import requested
from lightning_kernel.errors import ExecutorError
from lightning_kernel.executors import Executor, WorkerExit, WorkerHandle, WorkerSpec

from ._config import SshConfig
from ._link import HostLink
from ._placement import Placement, Slot
from ._relay import Relay

log = logging.getLogger(__name__)

CARRIED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "LK_S3_ENDPOINT_URL",
)
"""The kernel's S3 settings, carried to a worker whose store is S3 (in its 0600 spec, not its command)."""
TERM_GRACE_S = 5.0
SSH_DIR = ".lightning-kernel/ssh"
"""Under the host's HOME: each worker's spec (while it starts), log and exit code."""
SWEEP = (
    f'for d in "$HOME"/{SSH_DIR}/*/*; do [ -d "$d" ] || continue; '
    'if [ -n "$(find "$d" -maxdepth 0 -mmin +1440)" ]; then live=; '
    'for p in "$d"/pid-*; do [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && live=1; done; '
    '[ -z "$live" ] && rm -rf "$d"; fi; done; '
    f'rmdir "$HOME"/{SSH_DIR}/* 2>/dev/null; true'
)
"""Run once per kernel start on each host: what workers of killed kernels left (their log and exit
status, kept a day for a look) goes once no process of theirs is alive."""
WRAPPER = r"""d=$1; a=$2; shift 2
trap '' HUP TERM
"$@" & c=$!
echo "$c" > "$d/pid-$a"
wait "$c"; s=$?
kill -TERM -- -$$ 2>/dev/null
echo "$s" > "$d/exit-$a.tmp" && mv "$d/exit-$a.tmp" "$d/exit-$a"
"""
"""The worker's parent on the host, leader of its session and process group: it records the worker's
exit status (``$?``: 128 + the signal when a signal killed it), then ends what the worker left in
the group. It ignores SIGHUP and SIGTERM (the worker sets its own handlers)."""


def _quote_home(path: str) -> str:
    """``path`` for ``sh``, with a leading ``~/`` left to the host's HOME."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _proc_start(stat: str) -> str:
    """The start time field of a ``/proc/PID/stat`` line; '' if it is not one."""
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return ""


def _killed(host: str, sig: int, tail: str) -> str:
    import signal

    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    return f"the worker on {host} was killed by {name}" + (f": {tail}" if tail else "")


class SshHandle(WorkerHandle):
    def __init__(
        self,
        executor: SshExecutor,
        link: HostLink,
        work: str,
        ref: dict[str, Any],
        slot: Slot,
        lease_s: float,
    ) -> None:
        self.executor = executor
        self.link = link
        self.work = work
        self._ref = ref
        self.slot = slot
        self.lease_s = lease_s
        self._exit: asyncio.Future[WorkerExit] | None = None
        self._killed_by: int | None = None
        self.ended = False
        self.idle = False
        """Between calls (its last call finished): its host's CPUs and GPUs may go to a waiting Work."""
        self.reclaimed = False

    @property
    def ref(self) -> dict[str, Any]:
        return dict(self._ref)

    @property
    def alive(self) -> bool:
        return not self.ended

    @property
    def _pid(self) -> int:
        return int(self._ref["pid"])

    @property
    def _pgid(self) -> int:
        """The worker's parent on the host (``WRAPPER``): its session, its process group."""
        return int(self._ref.get("pgid", self._ref["pid"]))

    def _files(self) -> tuple[str, str]:
        d, a = self._ref["dir"], self._ref["attempt"]
        return f"{d}/exit-{a}", f"{d}/log-{a}"

    def watch(self) -> None:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._watch())

    async def wait(self) -> WorkerExit:
        self.watch()
        assert self._exit is not None
        return await asyncio.shield(self._exit)

    async def _watch(self) -> WorkerExit:
        try:
            exit_ = await self._wait_remote()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            exit_ = WorkerExit(
                code=None,
                cause="lost",
                message=f"watching the worker on {self.link.describe()} failed: {exc}",
            )
        self.ended = True
        self.executor._ended(self)
        return exit_

    async def _wait_remote(self) -> WorkerExit:
        exit_file, log_file = self._files()
        # GNU tail waits for a pid without forking (and ends with the channel); else a sleep loop.
        waiter = (
            f"if tail --version 2>/dev/null | grep -q GNU; then tail --pid={self._pgid} -s 0.1 -f /dev/null; "
            f"else while kill -0 {self._pgid} 2>/dev/null; do sleep 0.2; done; fi; "
            f"cat {_quote_home(exit_file)} 2>/dev/null || echo none"
        )
        while True:
            try:
                if not await self._same_process():
                    break
                proc = await self.link.start_process(waiter)
                out = await proc.stdout.read()
                await proc.wait()
                if out.strip():
                    break  # the waiter ended with the worker's exit code (or "none")
            except ExecutorError:
                pass
            except Exception as exc:  # the channel went with the connection
                log.info("%s: waiting for %s: %s", self.link.describe(), self.work, exc)
            if not await self._reconnect():
                return WorkerExit(
                    code=None,
                    cause="lost",
                    message=(
                        f"the SSH connection to {self.link.describe()} was lost and not re-established within "
                        f"{self.lease_s:.0f} s; the worker stops itself once its lease on the kernel lapses"
                    ),
                )
        return await self._ended_how(exit_file, log_file)

    async def _same_process(self) -> bool:
        _, out, _ = await self.link.run(f"cat /proc/{self._pid}/stat 2>/dev/null", timeout=30)
        return _proc_start(out) == self._ref["start"] and out != ""

    async def _reconnect(self) -> bool:
        """Get the connection back within the lease (the worker is still waiting for its kernel)."""
        lost_at = self.link.lost_at or time.monotonic()
        deadline = lost_at + self.lease_s
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.link.connect(), max(1.0, deadline - time.monotonic()))
                return True
            except (ExecutorError, asyncio.TimeoutError):
                await asyncio.sleep(0.5)
        return False

    async def _ended_how(self, exit_file: str, log_file: str) -> WorkerExit:
        e, g = _quote_home(exit_file), self._pgid
        pid_file = f"{self._ref['dir']}/pid-{self._ref['attempt']}"
        _, out, _ = await self.link.run(
            # The worker's parent writes its exit status as soon as it ended: give it a moment.
            f"i=0; while [ ! -f {e} ] && kill -0 {g} 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
            f"cat {e} 2>/dev/null; echo; tail -c 2000 {_quote_home(log_file)} 2>/dev/null; "
            f"kill -KILL -- -{g} 2>/dev/null; rm -f {e} {_quote_home(log_file)} {_quote_home(pid_file)}; "
            f"rmdir {_quote_home(self._ref['dir'])} {_quote_home(self._ref['dir'].rsplit('/', 1)[0])} 2>/dev/null; true",
            timeout=30,
        )
        first, _, tail = out.partition("\n")
        first, tail = first.strip(), tail.strip()[-1500:]
        if first.isdigit() and int(first) > 128:  # the shell's 128 + the signal that killed it
            sig = int(first) - 128
            return WorkerExit(
                code=None, signal=sig, cause="killed", message=_killed(self.link.name, sig, tail)
            )
        if first.isdigit():
            code = int(first)
            message = "" if code == 0 else f"the worker on {self.link.name} exited with code {code}: {tail}"
            return WorkerExit(code=code, cause="exited", message=message)
        sig = self._killed_by or 9
        return WorkerExit(code=None, signal=sig, cause="killed", message=_killed(self.link.name, sig, tail))

    async def terminate(self, grace: float = TERM_GRACE_S) -> None:
        if not self.alive:
            return
        pid = self._pid
        with contextlib.suppress(ExecutorError):
            await self.link.run(f"kill -TERM {pid} 2>/dev/null", timeout=15)
        try:
            await asyncio.wait_for(self.wait(), grace)
            return
        except asyncio.TimeoutError:
            pass
        self._killed_by = 9
        with contextlib.suppress(ExecutorError):
            await self.link.run(
                f"kill -USR1 {pid} 2>/dev/null; sleep 0.2; kill -KILL -- -{self._pgid} 2>/dev/null",
                timeout=15,
            )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wait(), 30)


class SshExecutor(Executor):
    name = "ssh"

    def __init__(self, config: SshConfig) -> None:
        self.config = config
        self.links = {h.name: HostLink(h, config) for h in config.hosts}
        self.placement = Placement(config.hosts)
        self._setup_done: dict[str, asyncio.Task[str]] = {}
        self._nc: Any = None
        self._nc_url = ""
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
        self.placement.candidates(name, asked)  # refuses at once what no host can ever hold
        # Hosts whose CPU count is not configured are counted once reached.
        for link in self.links.values():
            if self.placement._hosts[link.name].cpus is None and link.name in self.placement.candidates(
                name, asked
            ):
                with contextlib.suppress(ExecutorError):
                    probed = await link.probe()
                    self.placement.set_cpus(link.name, int(probed["cpus"]))
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
        if self._nc is not None and self._nc_url == spec.nats_url and self._nc.is_connected:
            return self._nc
        import nats

        self._nc = await nats.connect(
            spec.nats_url, token=spec.nats_token, name="lk-ssh-executor", max_reconnect_attempts=-1
        )
        self._nc_url = spec.nats_url
        self._relay = None
        return self._nc

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
        nc = await self._nats(spec)
        token = spec.work.replace(".", ":")
        subs = self._subs.setdefault(id(handle), [])
        attempt = int(handle.ref.get("attempt", 0))

        async def on_line(msg: Any) -> None:
            with contextlib.suppress(Exception):
                line = json.loads(msg.data)
                out = sys.stderr if line.get("s") == "stderr" else sys.stdout
                out.write(f"{line.get('l', '')}\n")
                out.flush()

        async def on_event(msg: Any) -> None:
            with contextlib.suppress(Exception):
                event = json.loads(msg.data)
                body = event.get("body") or {}
                if event.get("type") != "work.status_changed" or body.get("attempt", attempt) != attempt:
                    return
                handle.idle = body.get("stage") in ("succeeded", "failed", "stopped")
                if handle.idle:
                    self._wake()

        if spec.echo:
            subs.append(await nc.subscribe(f"lklog.{spec.run_id}.{token}", cb=on_line))
        subs.append(await nc.subscribe(f"lk.{spec.run_id}.evt.{token}", cb=on_event))

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
        slot = await self._reserve(name, asked)
        try:
            return await self._launch(spec, slot)
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
        command = (
            f"umask 077; mkdir -p {d} || exit 1; cat > {d}/spec-{a} || exit 1; rm -f {d}/pid-{a} {d}/exit-{a}; "
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
            "start": _proc_start(lines[2]),
            "pgid": int(lines[0]),
            "dir": folder,
            "attempt": a,
            "nats_port": port,
            "cpus": slot.cpus,
            "gpus": list(slot.gpus),
        }
        handle = SshHandle(self, link, spec.work, ref, slot, spec.lease_s)
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
        if _proc_start(out) != start:
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
        handle = SshHandle(self, link, spec.work if spec else "", dict(ref), slot, lease_s)
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
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)
            self._nc = None
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
