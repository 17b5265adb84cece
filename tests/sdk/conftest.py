"""Fixtures of the SDK's tests: a data dir with the real CLI (``lk``, as in tests/e2e), its detached
kernels ended after each test, and a real ``serve`` on it."""

from __future__ import annotations

import importlib.util
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from _fixtures._ports import free_port, wait_port  # noqa: E402
from _sdk_helpers import end_kernel  # noqa: E402

_spec = importlib.util.spec_from_file_location("lk_e2e_conftest", TESTS / "e2e" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
LK = _e2e.LK


@pytest.fixture
def lk(tmp_path: Path) -> Iterator[Any]:
    cli = LK(tmp_path)
    yield cli
    end_kernel(tmp_path / "data")


@pytest.fixture
def data_dir(lk: Any) -> str:
    return str(lk.dir / "data")


@pytest.fixture
def serve(lk: Any) -> Iterator[str]:
    """A `lightning-kernel serve` on the data dir; its URL."""
    port = free_port()
    proc = lk.popen("serve", "--port", str(port))
    try:
        wait_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
