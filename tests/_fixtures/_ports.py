from __future__ import annotations

import socket
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0, proc: Any = None) -> None:
    """Until something listens on ``port``; ``proc``, the process that should: fail at once, with what
    it printed, when it exits first (and show what it printed when it never listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before listening on {port}:\n{out}\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    said = ""
    if proc is not None:
        proc.kill()
        out, err = proc.communicate()
        said = f":\n{out}\n{err}"
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s{said}")
