"""The embedded nats-server never outlives its kernel, even one killed as it forks the server."""

from __future__ import annotations

import functools
import subprocess
import sys
import time

import pytest
from lightning_kernel._natsserver import die_with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_a_child_whose_parent_is_gone_before_the_request_took_goes_at_once():
    # As if its kernel died between the fork and the request: the child was forked by another pid.
    started = time.monotonic()
    proc = subprocess.run(["sleep", "30"], preexec_fn=functools.partial(die_with_parent, 1), timeout=10)
    assert proc.returncode == 1 and time.monotonic() - started < 5


def test_a_child_of_a_live_parent_runs():
    import os

    proc = subprocess.run(["true"], preexec_fn=functools.partial(die_with_parent, os.getpid()), timeout=10)
    assert proc.returncode == 0
