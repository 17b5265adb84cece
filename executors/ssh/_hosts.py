"""``lightning-kernel hosts``: each configured SSH host checked, one line each, saying what is wrong."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lightning_kernel.errors import ExecutorError

from ._config import HostConfig, SshConfig
from ._link import HostLink

GPU_QUERY = "nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv,noheader,nounits 2>&1"


@dataclass(frozen=True)
class HostCheck:
    host: HostConfig
    ok: bool
    detail: str
    warn: bool = False

    def line(self) -> str:
        state = "FAILED" if not self.ok else "warn" if self.warn else "ok"
        return f"{self.host.name:<12} {self.host.address:<28} {state:<6} {self.detail}"


async def _gpus(link: HostLink) -> tuple[str, bool]:
    """What the host's GPUs look like, and whether that is a problem."""
    if not link.host.gpus:
        return "no gpus configured", False
    status, out, _ = await link.run(GPU_QUERY, timeout=30)
    if status != 0:
        why = out.strip()[:120] or f"exit {status}"
        return f"{link.host.gpus} gpus configured, but nvidia-smi does not answer ({why})", True
    busy, seen = 0, 0
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            seen += 1
            if (parts[1].isdigit() and int(parts[1]) > 500) or (parts[2].isdigit() and int(parts[2]) > 10):
                busy += 1
    if seen < link.host.gpus:
        return f"{link.host.gpus} gpus configured, the host has {seen}", True
    return f"{seen - busy}/{seen} gpus free", False


async def check(host: HostConfig, config: SshConfig) -> HostCheck:
    link = HostLink(host, config)
    try:
        await link.connect()
        probed = await link.probe()
        gpus, warn = await _gpus(link)
        cpus = host.cpus if host.cpus is not None else probed["cpus"]
        labels = f", labels {list(host.labels)}" if host.labels else ""
        key = "" if host.verify else ", HOST KEY NOT VERIFIED (known_hosts = 'none')"
        detail = f"lightning-kernel {probed['version']}, Python {probed['python']}, {cpus} cpus, {gpus}{labels}{key}"
        return HostCheck(host, True, detail, warn=warn or not host.verify)
    except ExecutorError as exc:
        return HostCheck(host, False, str(exc))
    finally:
        await link.close()


async def check_all(config: SshConfig) -> list[HostCheck]:
    return list(await asyncio.gather(*(check(h, config) for h in config.hosts)))
