"""asyncssh, behind this one module: a multiplexed connection per host, with keepalives, the NATS
port forwarded to the host, SFTP, and commands.

One connection per host carries everything: the remote port forward that lets the host's workers
reach the kernel's NATS (listening on the host's loopback only: nothing listens anywhere else), one
exec channel per worker that waits for it to end, one per command, and one SFTP session for the
artifact relay. Keepalives every ``keepalive_s`` (3 missed: the link is dead, within 15 s by default).
Host keys are verified against ``known_hosts`` unless a host's config says ``"none"`` (warned about
at every start). A lost link is reconnected on demand, asking the host for the same forwarded port:
the workers that were running reconnect to NATS through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from typing import Any

from lightning_kernel._version import __version__
from lightning_kernel.errors import ExecutorError

from ._config import HostConfig, SshConfig

log = logging.getLogger(__name__)

PROBE = (
    "import sys, os\n"
    "try:\n"
    "    from lightning_kernel._version import __version__ as v\n"
    "except Exception as e:\n"
    "    v = '!' + type(e).__name__ + ': ' + str(e)\n"
    "print(v)\n"
    "print(os.cpu_count() or 1)\n"
    "print(sys.version.split()[0])\n"
)


class HostUnreachable(ExecutorError):
    """The host did not answer (refused, timed out, no route): another host may take the Work."""


def _asyncssh() -> Any:
    try:
        import asyncssh
    except ImportError as exc:
        raise ExecutorError("the ssh executor needs asyncssh: pip install 'lightning-kernel[ssh]'") from exc
    return asyncssh


class HostLink:
    """The connection to one host; reconnects when asked after a loss."""

    def __init__(self, host: HostConfig, config: SshConfig) -> None:
        self.host = host
        self.config = config
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._sftp: Any = None
        self._listeners: dict[int, Any] = {}
        """Remote port (on the host's loopback) -> its listener, while connected."""
        self.forwards: dict[int, tuple[str, int]] = {}
        """Remote port -> the kernel-side NATS it reaches; kept across reconnects (workers there use it)."""
        self.probed: dict[str, str] | None = None
        self.lost_at: float | None = None
        self._warned = False
        self._watcher: asyncio.Future[None] | None = None

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def describe(self) -> str:
        return f"host {self.host.name} ({self.host.address})"

    async def connect(self) -> Any:
        async with self._lock:
            if self._conn is not None:
                return self._conn
            asyncssh = _asyncssh()
            h = self.host
            options: dict[str, Any] = {
                "username": h.user,
                "keepalive_interval": self.config.keepalive_s,
                "keepalive_count_max": 2,
                "connect_timeout": self.config.connect_timeout_s,
                "login_timeout": self.config.connect_timeout_s,
                # Preferred first, asyncssh's defaults after: a host without them still connects.
                "encryption_algs": "^" + ",".join(self.config.ciphers),
            }
            if h.client_keys:
                options["client_keys"] = list(h.client_keys)
                options["passphrase"] = h.passphrase
            if h.verify:
                if not os.path.isfile(h.known_hosts):
                    raise ExecutorError(
                        f"{self.describe()}: known_hosts file {h.known_hosts} does not exist; add the host's key "
                        f"(ssh-keyscan -p {h.port} {h.host} >> {h.known_hosts}, after checking it) or name "
                        "another file with known_hosts"
                    )
                options["known_hosts"] = h.known_hosts
            else:
                options["known_hosts"] = None
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "%s: known_hosts = 'none': its host key is NOT verified (anyone on the path can "
                        "pose as it)",
                        self.describe(),
                    )
            try:
                conn = await asyncssh.connect(h.host, h.port, **options)
            except asyncssh.HostKeyNotVerifiable as exc:
                raise ExecutorError(
                    f"{self.describe()}: its host key is not the one in {h.known_hosts} ({exc}); if the host "
                    f"was reinstalled, check its new key and replace the old one (ssh-keygen -R '[{h.host}]:{h.port}')"
                ) from exc
            except asyncssh.PermissionDenied as exc:
                keys = list(h.client_keys) or "the agent and ~/.ssh/id_*"
                raise ExecutorError(
                    f"{self.describe()}: user {h.user!r} was refused with keys {keys} ({exc})"
                ) from exc
            except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
                raise HostUnreachable(
                    f"{self.describe()}: cannot connect: {type(exc).__name__}: {exc}"
                ) from exc
            self._conn = conn
            self.lost_at = None
            try:
                for port, (nats_host, nats_port) in list(self.forwards.items()):
                    await self._forward(conn, nats_host, nats_port, port)
            except BaseException:
                self._drop(conn)
                raise
            self._watcher = asyncio.ensure_future(self._watch(conn))
            return conn

    async def _watch(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await conn.wait_closed()
        if self._conn is conn:
            self._drop(conn)
            log.warning("%s: the SSH connection was lost", self.describe())

    def _drop(self, conn: Any) -> None:
        if self._conn is conn:
            self._conn = None
            self._sftp = None
            self._listeners.clear()
            self.lost_at = time.monotonic()
        with contextlib.suppress(Exception):
            conn.abort()

    async def _forward(self, conn: Any, nats_host: str, nats_port: int, port: int) -> int:
        deadline = time.monotonic() + 15
        while True:
            try:
                listener = await conn.forward_remote_port("127.0.0.1", port, nats_host, nats_port)
                break
            except Exception as exc:  # the host still holds the old port (its old session not yet gone)
                if port == 0 or time.monotonic() > deadline:
                    raise ExecutorError(
                        f"{self.describe()}: cannot forward NATS to the host's port {port}: {exc}"
                    ) from exc
                await asyncio.sleep(0.5)
        got = int(listener.get_port())
        self._listeners[got] = listener
        self.forwards[got] = (nats_host, nats_port)
        return got

    async def nats_port(self, nats_host: str, nats_port: int, prefer: int = 0) -> int:
        """The port on the host's loopback that reaches the kernel's NATS at ``nats_host:nats_port``;
        ``prefer``: that port (a re-attached worker's), made to reach it if it reached another."""
        conn = await self.connect()
        target = (nats_host, nats_port)
        async with self._lock:
            if prefer:
                if prefer in self._listeners and self.forwards.get(prefer) == target:
                    return prefer
                old = self._listeners.pop(prefer, None)
                if old is not None:  # the kernel's NATS moved (a restarted embedded server)
                    old.close()
                    with contextlib.suppress(Exception):
                        await old.wait_closed()
                return await self._forward(conn, nats_host, nats_port, prefer)
            for port, where in self.forwards.items():
                if where == target and port in self._listeners:
                    return port
            return await self._forward(conn, nats_host, nats_port, 0)

    async def run(
        self, command: str, input: str | None = None, timeout: float = 60.0
    ) -> tuple[int, str, str]:
        """Run ``command`` (sh) on the host: ``(exit status, stdout, stderr)``."""
        conn = await self.connect()
        try:
            result = await asyncio.wait_for(conn.run(command, input=input, check=False), timeout)
        except asyncio.TimeoutError as exc:
            raise ExecutorError(
                f"{self.describe()}: {command.split()[0]}... took over {timeout:.0f} s"
            ) from exc
        except Exception as exc:
            raise ExecutorError(
                f"{self.describe()}: running a command failed: {type(exc).__name__}: {exc}"
            ) from exc
        status = result.exit_status if result.exit_status is not None else -1
        return status, str(result.stdout or ""), str(result.stderr or "")

    async def start_process(self, command: str) -> Any:
        """A long-running command (a worker's waiter); its ``wait()`` ends with the channel."""
        conn = await self.connect()
        return await conn.create_process(command)

    async def sftp(self) -> Any:
        conn = await self.connect()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    async def get_file(self, remote: str, local: str) -> None:
        """Copy the host's file ``remote`` to ``local`` (SFTP on this connection)."""
        await (await self.sftp()).get(remote, local)

    async def put_file(self, local: str, remote: str) -> None:
        """Copy ``local`` to the host's ``remote`` (SFTP on this connection)."""
        await (await self.sftp()).put(local, remote)

    async def probe(self) -> dict[str, str]:
        """The host's lightning-kernel version (refused when it differs), its CPU count and Python."""
        if self.probed is not None and self.connected:
            return self.probed
        py = self.host.python
        status, out, err = await self.run(f"{shlex.quote(py)} -c {shlex.quote(PROBE)}", timeout=60)
        lines = out.strip().splitlines()
        if status == 127 or (status != 0 and not lines):
            raise ExecutorError(
                f"{self.describe()}: cannot run its python {py!r} (exit {status}): {err.strip()[-300:]}; set "
                "python = '/path/to/python' for this host"
            )
        version = lines[0] if lines else "?"
        if version.startswith("!"):
            raise ExecutorError(
                f"{self.describe()}: {py} has no lightning-kernel ({version[1:]}); the kernel runs "
                f"lightning-kernel {__version__}: pip install 'lightning-kernel=={__version__}' there"
            )
        if version != __version__:
            raise ExecutorError(
                f"{self.describe()} runs lightning-kernel {version} ({py}), the kernel runs "
                f"{__version__}: install the same version on both"
            )
        self.probed = {
            "version": version,
            "cpus": lines[1] if len(lines) > 1 else "1",
            "python": lines[2] if len(lines) > 2 else "?",
        }
        return self.probed

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._listeners.clear()
        self._sftp = None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
