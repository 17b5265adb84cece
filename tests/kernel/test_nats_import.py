"""nats-py is imported without aiohttp (it only serves ws:// servers), and gets it back when asked."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("aiohttp")


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def test_the_kernel_imports_nats_without_aiohttp_and_others_still_can() -> None:
    out = _run(
        "import sys, lightning_kernel._bus, nats.aio.transport as t\n"
        "print('aiohttp' in sys.modules, t.aiohttp is None)\n"
        "import aiohttp\n"
        "print(aiohttp.ClientSession.__name__)\n"
    )
    assert out.split() == ["False", "True", "ClientSession"]


def test_a_websocket_url_gives_nats_its_aiohttp_back() -> None:
    out = _run(
        "import lightning_kernel._bus, nats.aio.transport as t\n"
        "from lightning_kernel._nats_import import enable_websockets\n"
        "enable_websockets('nats://127.0.0.1:4222')\n"
        "print(t.aiohttp is None)\n"
        "enable_websockets('nats://a:1, wss://b:443')\n"
        "print(t.aiohttp is not None and t.aiohttp.__name__)\n"
    )
    assert out.split() == ["True", "aiohttp"]
