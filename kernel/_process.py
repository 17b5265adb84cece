"""A worker process's signals and exits: SIGINT and SIGTERM belong to the main thread (where the Work's
code runs, and where their handlers interrupt it), and a worker that must go goes, even if it hangs."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

_MAIN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def quiet_signals() -> None:
    """Block SIGINT and SIGTERM in the calling (non-main) thread, so the kernel delivers them to the
    main thread, whose handlers interrupt the Work's code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_SIGNALS)


def tell(line: str) -> None:
    """A line on the process's own stderr (not the Work's log: the kernel may be unreachable)."""
    if sys.__stderr__ is not None:
        sys.__stderr__.write(line + "\n")
        sys.__stderr__.flush()


def exit_later(seconds: float) -> None:
    """Exit the process after ``seconds`` whatever it is doing then (a persist hung on a dead store)."""

    def run() -> None:
        time.sleep(seconds)
        os._exit(1)

    threading.Thread(target=quiet(run), name="lk-exit-watchdog", daemon=True).start()


def interrupt_main() -> None:
    """SIGINT to the main thread itself (not the process: the kernel could deliver that to a thread
    that is not blocked in user code, and the Work's sleep would not be interrupted)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def quiet(fn: Any) -> Any:
    def run(*args: Any) -> Any:
        quiet_signals()
        return fn(*args)

    return run
