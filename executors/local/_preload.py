"""Imported by the local executor's forkserver only, as its preload: the forkserver dies with the
kernel that started it (its workers die with it in turn, see ``_local_main``), so a ``kill -9`` of
the kernel leaves no process behind."""

from lightning_kernel._natsserver import die_with_parent

die_with_parent()
