"""Where a Work serves: ``work.host``, ``work.port``, ``work.internal_ip`` and ``work.url``.

The worker chooses them on the Work's own machine, before the first ``run()``, and publishes them
(``work.endpoint``), so the flow and other Works read them from the log as they read any state,
whatever the executor (a local process, an SSH host, a Ray node). The port is free on that machine
when it is chosen (bound to port 0 and released); a Work that fixed one (``LightningWork(port=...)``)
keeps it. Then, while ``run()`` runs, the worker tries to connect to it every ``POLL_S`` and, once
something accepts, publishes the endpoint again with ``listening``: ``run app`` prints the URL then,
so the user sees it when it works, not before.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

POLL_S = 0.1
"""How often a worker looks whether its Work's server accepts connections yet."""

WILDCARDS = ("0.0.0.0", "::", "")


def machine_ip() -> str:
    """This machine's address on its network, 127.0.0.1 when it has none."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.254.254.254", 1))  # UDP: no packet is sent, the route chooses the address
        return str(s.getsockname()[0])
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host if host not in WILDCARDS else "", 0))
        return int(s.getsockname()[1])


def choose(host: str, port: int | None) -> dict[str, Any]:
    """The endpoint of a Work that binds ``host``, on ``port`` or a free one."""
    if port is None:
        port = free_port(host)
    internal = machine_ip() if host in WILDCARDS else host
    shown = f"[{internal}]" if ":" in internal else internal
    return {"host": host, "port": port, "internal_ip": internal, "url": f"http://{shown}:{port}"}


def accepts(endpoint: dict[str, Any]) -> bool:
    """Whether something accepts connections at ``endpoint`` now."""
    host = endpoint["internal_ip"]
    try:
        with socket.create_connection((host, int(endpoint["port"])), timeout=0.5):
            return True
    except OSError:
        return False


class ListeningWatch:
    """Calls ``found()`` once, the first time the endpoint accepts a connection while ``active()``."""

    def __init__(
        self, endpoint: dict[str, Any], active: Callable[[], bool], found: Callable[[], None]
    ) -> None:
        self._endpoint = endpoint
        self._active = active
        self._found = found
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lk-endpoint", daemon=True)

    def start(self) -> ListeningWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(POLL_S):
            if self._active() and accepts(self._endpoint):
                self._done.set()
                with contextlib.suppress(Exception):
                    self._found()
