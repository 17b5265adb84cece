"""Import nats-py without aiohttp, which it loads only for its WebSocket transport.

``import nats`` pulls in aiohttp when it is installed (s3fs brings it): 0.3-0.4 s of a kernel's or a
CLI command's start on these machines, for ``ws://`` URLs that the kernel rarely sees. nats-py reads
``aiohttp`` once, at import, into ``nats.aio.transport``; importing it while ``import aiohttp`` fails
leaves that name None, and ``enable_websockets`` puts the real module there when a ``ws://`` or
``wss://`` server is asked for. Other code's ``import aiohttp`` is not affected.
"""

from __future__ import annotations

import sys


def import_nats() -> None:
    if "nats.aio.transport" in sys.modules or "aiohttp" in sys.modules:
        return  # too late, or nothing to save
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # makes `import aiohttp` raise ImportError
    try:
        import nats.aio.client  # noqa: F401
    finally:
        del sys.modules["aiohttp"]


def enable_websockets(url: str) -> None:
    """Give nats-py its aiohttp if ``url`` names a WebSocket server."""
    if not any(part.strip().startswith(("ws://", "wss://")) for part in url.split(",")):
        return
    import aiohttp
    import nats.aio.transport

    nats.aio.transport.aiohttp = aiohttp
