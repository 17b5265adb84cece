"""Lightning App's ``lightning.app.pdb``: ``set_trace()`` in a Work's ``run()`` (or the flow's) opens pdb
on the terminal ``run app`` was started from, though the Work runs in a worker process of its own.

Lightning App's workers were multiprocessing children that kept the app's stdin; a worker here is
forked from the kernel's forkserver with no stdin, so the debugger talks to the process's controlling
terminal (``/dev/tty``), which every local worker shares with ``run app``. A worker is a process
group of its own (so that the kernel stops it whole), in the terminal's background, where reading the
terminal would stop it (SIGTTIN): while it reads commands, its group is the terminal's foreground one
(as a shell gives the terminal to a job), then ``run app``'s again. Works debugging at once take turns:
one session at a time holds a lock (``flock``) while it reads commands. Without a terminal (a detached run, a Ray actor, an SSH host) it is an error saying
so, where Lightning App would have waited on a stdin nobody types into.
"""

from __future__ import annotations

import fcntl
import os
import pdb
import signal
import sys
import tempfile
from typing import Any

__all__ = ["MPPdb", "set_trace"]


class MPPdb(pdb.Pdb):
    """pdb on the controlling terminal, one debugging process at a time."""

    def __init__(self) -> None:
        try:
            # Two streams: a terminal is not seekable, which a text file open for both needs.
            tty_in, tty_out = open("/dev/tty"), open("/dev/tty", "w")  # noqa: SIM115 (the session's)
        except OSError as exc:
            raise RuntimeError(
                f"lightning_kernel.pdb.set_trace(): process {os.getpid()} has no terminal ({exc}): run the "
                "app from a terminal with `lightning-kernel run app app.py`, or debug the flow's code "
                "with `lightning-kernel replay RUN --until SEQ --pdb`"
            ) from None
        super().__init__(stdin=tty_in, stdout=tty_out, nosigint=True)
        self.use_rawinput = False  # read self.stdin (the terminal), not sys.stdin
        self._tty_fd = tty_in.fileno()
        self._lock_path = os.path.join(tempfile.gettempdir(), f"lk-pdb-{os.getuid()}.lock")

    def _cmdloop(self) -> None:
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            before = self._foreground(os.getpgrp())
            try:
                self.cmdloop()
            finally:
                if before is not None:
                    self._foreground(before)
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _foreground(self, group: int) -> int | None:
        """Make ``group`` the terminal's foreground process group; the one it was, None if unchanged.
        SIGTTOU is blocked meanwhile: a background process that sets it is otherwise stopped by it."""
        try:
            before = os.tcgetpgrp(self._tty_fd)
        except OSError:
            return None
        if before == group:
            return None
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            os.tcsetpgrp(self._tty_fd, group)
        except OSError:
            return None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return before


def set_trace(*args: Any, **kwargs: Any) -> None:
    """Stop in the caller's frame with pdb on the terminal (see the module docstring)."""
    MPPdb().set_trace(sys._getframe().f_back)
