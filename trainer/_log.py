"""Where the Trainer's info lines go: :mod:`logging`, under ``lightning_kernel.trainer.*`` names.

As in PyTorch Lightning, an application that configured no logging still sees them: the first
Trainer (or ``seed_everything``) gives the ``lightning_kernel.trainer`` logger level INFO and a
handler that writes to the *current* ``sys.stderr`` (a Work's worker swaps it for a tee that records
lines), and stops it propagating so that a later ``basicConfig`` does not print them twice. Where the
root logger has handlers already (the application's, pytest's), nothing is added and records
propagate as usual. Not done at import: importing never configures anything.
"""

import logging
import sys

NAME = "lightning_kernel.trainer"


class _CurrentStderr(logging.StreamHandler):
    """A StreamHandler bound to whatever ``sys.stderr`` is when a record is written."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_done = False


def ensure_handler() -> None:
    global _done
    if _done:
        return
    _done = True
    logger = logging.getLogger(NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logging.getLogger().hasHandlers() and not logger.handlers:
        logger.addHandler(_CurrentStderr())
        logger.propagate = False
