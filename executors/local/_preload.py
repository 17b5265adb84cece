"""Imported by the local executor's forkserver only, as its preload: the forkserver dies with the
kernel that started it (its workers die with it in turn, see ``_local_main``), so a ``kill -9`` of
the kernel leaves no process behind.

It also leads a process group of its own, which its workers join: a signal sent to the kernel's group
(Ctrl-C in a terminal, ``timeout``, ``kill -- -PGID``) reaches the kernel alone, and the kernel stops
the Works itself, recording why; the forkserver never dies under live workers that way.
"""

import contextlib
import os

from lightning_kernel._natsserver import die_with_parent

die_with_parent()
with contextlib.suppress(OSError):
    os.setpgid(0, 0)
