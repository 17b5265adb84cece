"""The kernel's side of a remote worker's prints: its lines reach the kernel's terminal as a local
Work's do. A worker on another machine (an SSH host, a Ray node) publishes them to the log stream like
any worker (``logs`` reads them from the database); an executor echoes them from that stream, which a
re-attached worker keeps publishing into, as no channel to the host does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from ._spec import WorkerSpec


class KernelNats:
    """An executor's own NATS connection to its kernel's server (the spec's URL and token)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nc: Any = None
        self.url = ""

    async def connect(self, spec: WorkerSpec) -> Any:
        """The connection, made again when the kernel (and its URL) changed."""
        if self.nc is not None and self.url == spec.nats_url and self.nc.is_connected:
            return self.nc
        import nats

        self.nc = await nats.connect(
            spec.nats_url, token=spec.nats_token, name=self.name, max_reconnect_attempts=-1
        )
        self.url = spec.nats_url
        return self.nc

    async def echo(self, spec: WorkerSpec) -> Any:
        """Print the Work's lines as they come (stderr's to stderr); returns the subscription."""
        nc = await self.connect(spec)

        async def on_line(msg: Any) -> None:
            with contextlib.suppress(Exception):
                line = json.loads(msg.data)
                out = sys.stderr if line.get("s") == "stderr" else sys.stdout
                out.write(f"{line.get('l', '')}\n")
                out.flush()

        return await nc.subscribe(f"lklog.{spec.run_id}.{spec.work.replace('.', ':')}", cb=on_line)

    async def idle_watch(self, spec: WorkerSpec, attempt: int, on_change: Any) -> Any:
        """Call ``on_change(idle)`` whenever the worker's call ends (idle) or one starts; returns the
        subscription. An executor that holds machines for idle workers reclaims them with it."""
        nc = await self.connect(spec)

        async def on_event(msg: Any) -> None:
            with contextlib.suppress(Exception):
                event = json.loads(msg.data)
                body = event.get("body") or {}
                if event.get("type") != "work.status_changed" or body.get("attempt", attempt) != attempt:
                    return
                on_change(body.get("stage") in ("succeeded", "failed", "stopped"))

        return await nc.subscribe(f"lk.{spec.run_id}.evt.{spec.work.replace('.', ':')}", cb=on_event)

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)
            self.nc = None
