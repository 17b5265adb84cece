"""A process's start time from Linux's ``/proc/<pid>/stat``: with the pid, it tells a live process
from a newer one that reuses its pid. Used for kernels (leases) and workers, local and on SSH hosts."""

from __future__ import annotations


def stat_start(stat: str) -> str:
    """The start time (clock ticks since boot) in a ``/proc/<pid>/stat`` line; '' when it is not one,
    or when the process is a zombie (dead, not yet reaped by its parent: gone for every purpose here)."""
    try:
        fields = stat.rsplit(")", 1)[1].split()
        return "" if fields[0] in ("Z", "X") else fields[19]
    except IndexError:
        return ""


def process_start(pid: int) -> str:
    """The start time of local process ``pid``; '' when there is no such (live) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return stat_start(f.read())
    except OSError:
        return ""
