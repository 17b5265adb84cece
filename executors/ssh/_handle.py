"""One worker on an SSH host: how it is started there, watched, stopped and cleaned up after.

The worker's parent on the host is a small ``sh`` (``WRAPPER``) started with ``setsid``: leader of its own
session and process group, detached from the SSH channel (a dropped connection sends it no SIGHUP, its
output goes to a log file), it records the worker's exit status and ends whatever the worker left in
the group. The kernel watches it through one exec channel (``tail --pid``), reads that status when it
ends, and kills what is left of the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import Callable
from typing import Any

from lightning_kernel.errors import ExecutorError
from lightning_kernel.executors import WorkerExit, WorkerHandle
from lightning_kernel.executors._proc import stat_start

from ._link import HostLink
from ._placement import Slot

log = logging.getLogger(__name__)

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
        on_end: Callable[[SshHandle], None],
        link: HostLink,
        work: str,
        ref: dict[str, Any],
        slot: Slot,
        lease_s: float,
    ) -> None:
        self.on_end = on_end
        """Called once the worker has ended (its slot goes back to the placement)."""
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
        self.on_end(self)
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
        return stat_start(out) == self._ref["start"] and out != ""

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
