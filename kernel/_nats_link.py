"""Reaching a NATS server: a probe that it is there and speaks NATS, and the connection's health as
nats-py's callbacks tell it (for the kernel's watch: NATS lost is a fault after a short grace)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from .errors import ServiceUnreachable


def mask(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def probe(url: str) -> None:
    """Fail within seconds, naming the URL, when nothing listens there or what listens does not speak
    NATS (nats-py would retry for ever, or wait on an HTTP server's silence)."""
    from urllib.parse import urlsplit

    last: BaseException | str = ""
    for one in url.split(","):
        parts = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        if parts.scheme in ("ws", "wss"):
            return  # a websocket endpoint answers HTTP first; nats-py speaks to it
        if parts.scheme not in ("nats", "tls", ""):
            raise ServiceUnreachable(
                "NATS",
                mask(url),
                f"{parts.scheme}:// is not a NATS URL; use nats://host:4222 (or tls://, ws://)",
            )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 4222), 3
            )
        except ConnectionRefusedError:
            last = "connection refused (nothing listens on that port)"
            continue
        except asyncio.TimeoutError:
            last = "no answer to a TCP connect in 3 s"
            continue
        except OSError as exc:
            last = exc
            continue
        try:
            first = await asyncio.wait_for(reader.readline(), 3)
        except (OSError, asyncio.TimeoutError, ValueError):
            first = b""
        finally:
            writer.close()
        if first.startswith(b"INFO "):
            return
        said = first[:60].decode("latin-1").strip()
        last = f"the server there does not speak NATS ({f'it said {said!r}' if said else 'it said nothing in 3 s'})"
    reason = last if isinstance(last, str) else (str(last) or type(last).__name__)
    raise ServiceUnreachable("NATS", mask(url), f"{reason}; is nats-server running there?")


class ConnectionState:
    """What nats-py's callbacks say about the connection, for the kernel's watch."""

    def __init__(self) -> None:
        self.lost_at: float | None = None
        self.reason = ""
        self.changed = asyncio.Event()
        self.on_back: list[Callable[[], Awaitable[None]]] = []

    async def on_error(self, exc: Exception) -> None:
        self.reason = str(exc) or type(exc).__name__

    async def on_disconnected(self) -> None:
        if self.lost_at is None:
            self.lost_at = time.monotonic()
            self.changed.set()

    async def on_reconnected(self) -> None:
        self.lost_at = None
        self.reason = ""
        self.changed.set()
        for callback in self.on_back:
            with contextlib.suppress(Exception):
                await callback()

    async def on_closed(self) -> None:
        if self.lost_at is None:
            self.lost_at = time.monotonic()
        self.reason = self.reason or "the connection was closed"
        self.changed.set()
