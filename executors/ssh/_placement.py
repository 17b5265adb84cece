"""Where a Work goes: a host whose labels match its CloudCompute and that has the CPUs and GPUs free.

A host matches a CloudCompute whose name is one of its ``labels``; the generic names (``default``,
``cpu``, ``cpu-small``, ``cpu-medium``) match every host. A Work asks for ``cpus`` (1 unless its
``resources`` say) and ``gpus`` (``gpu``: 1, ``gpu-fast``: 1, ``gpu-fast-multi``: 4, or ``resources``);
GPUs are handed out by index, so two Works never share one, and each gets its own
``CUDA_VISIBLE_DEVICES``. A Work that no host could ever hold is refused at once, naming what it asked
and what the hosts have; one that must wait for others to finish is told why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lightning_kernel._compute import GENERIC_NAMES
from lightning_kernel.errors import ExecutorError

from ._config import HostConfig

DOWN_S = 30.0
"""How long a host that did not answer is passed over while other hosts can take its Works."""


@dataclass(frozen=True)
class Slot:
    host: str
    cpus: float
    gpus: tuple[int, ...] = ()

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(str(g) for g in self.gpus)


@dataclass
class _Host:
    config: HostConfig
    cpus: float | None
    """None until the host is reached (its own CPU count) unless the config says."""
    used_cpus: float = 0.0
    used_gpus: set[int] = field(default_factory=set)

    def matches(self, name: str) -> bool:
        return name in GENERIC_NAMES or name in self.config.labels

    def fits_ever(self, cpus: float, gpus: int) -> bool:
        return (self.cpus is None or cpus <= self.cpus) and gpus <= self.config.gpus

    def fits_now(self, cpus: float, gpus: int) -> bool:
        free_cpus = None if self.cpus is None else self.cpus - self.used_cpus
        return (free_cpus is None or cpus <= free_cpus + 1e-9) and gpus <= self.config.gpus - len(
            self.used_gpus
        )

    def describe(self) -> str:
        cpus = "cpus ?" if self.cpus is None else f"cpus {self.cpus:g}"
        return f"{self.config.name} ({cpus}, gpus {self.config.gpus}, labels {list(self.config.labels)})"


class Placement:
    def __init__(self, hosts: tuple[HostConfig, ...]) -> None:
        self._hosts = {h.name: _Host(h, None if h.cpus is None else float(h.cpus)) for h in hosts}
        self._down: dict[str, tuple[float, str]] = {}

    def cpus_known(self, host: str) -> bool:
        return self._hosts[host].cpus is not None

    def set_cpus(self, host: str, cpus: int) -> None:
        """The host's own CPU count, for a host whose config does not say."""
        h = self._hosts[host]
        if h.cpus is None:
            h.cpus = float(cpus)

    def candidates(self, name: str, asked: dict[str, float]) -> list[str]:
        """The hosts that could ever hold a Work asking for ``asked``; an error when there is none."""
        cpus, gpus = asked.get("cpus", 1.0), int(asked.get("gpus", 0))
        if not self._hosts:
            raise ExecutorError(
                "the ssh executor has no hosts: add [[executors.ssh.hosts]] tables to lightning-kernel.toml "
                "(in the working directory, or --config FILE / LK_CONFIG)"
            )
        matching = [h for h in self._hosts.values() if h.matches(name)]
        fitting = [h for h in matching if h.fits_ever(cpus, gpus)]
        if not fitting:
            what = f"CloudCompute({name!r}) asks for {cpus:g} cpus and {gpus} gpus"
            if not matching:
                raise ExecutorError(
                    f"{what}, but no SSH host has the label {name!r}; hosts: "
                    + "; ".join(h.describe() for h in self._hosts.values())
                )
            raise ExecutorError(
                f"{what}, more than any matching host has: " + "; ".join(h.describe() for h in matching)
            )
        return [h.config.name for h in fitting]

    def mark_down(self, host: str, why: str, seconds: float = DOWN_S) -> None:
        """``host`` did not answer: no Work goes there for ``seconds`` while another host can take it."""
        self._down[host] = (time.monotonic() + seconds, why)

    def down(self, candidates: list[str]) -> dict[str, str]:
        now = time.monotonic()
        return {h: why for h, (until, why) in self._down.items() if until > now and h in candidates}

    def take(self, name: str, asked: dict[str, float]) -> Slot | None:
        """A slot on the least loaded matching host with room now, or None (all busy). Hosts that
        just failed to answer are passed over; when every matching host did, that is an error."""
        cpus, gpus = asked.get("cpus", 1.0), int(asked.get("gpus", 0))
        names = self.candidates(name, asked)
        down = self.down(names)
        if down and len(down) == len(names):
            raise ExecutorError(
                f"no SSH host for CloudCompute({name!r}) answers: " + "; ".join(down.values())
            )
        ready = [self._hosts[n] for n in names if n not in down]
        free = [h for h in ready if h.fits_now(cpus, gpus)]
        if not free:
            return None
        host = min(free, key=lambda h: len(h.used_gpus) + h.used_cpus / max(h.cpus or 1.0, 1.0))
        return self.claim(host.config.name, cpus, self._free_gpus(host, gpus))

    def _free_gpus(self, host: _Host, n: int) -> tuple[int, ...]:
        return tuple(i for i in range(host.config.gpus) if i not in host.used_gpus)[:n]

    def claim(self, host: str, cpus: float, gpus: tuple[int, ...]) -> Slot:
        """Mark a slot as used (a new worker's, or a re-attached one's as its ref says)."""
        h = self._hosts[host]
        h.used_cpus += cpus
        h.used_gpus.update(gpus)
        return Slot(host, cpus, tuple(gpus))

    def release(self, slot: Slot) -> None:
        h = self._hosts.get(slot.host)
        if h is None:
            return
        h.used_cpus = max(0.0, h.used_cpus - slot.cpus)
        h.used_gpus.difference_update(slot.gpus)

    def busy(self, name: str, asked: dict[str, float]) -> str:
        """Why a Work must wait: what it asks and how busy each matching host is."""
        cpus, gpus = asked.get("cpus", 1.0), int(asked.get("gpus", 0))
        states = []
        for n in self.candidates(name, asked):
            h = self._hosts[n]
            total = "?" if h.cpus is None else f"{h.cpus:g}"
            states.append(
                f"{n}: {h.used_cpus:g}/{total} cpus and {len(h.used_gpus)}/{h.config.gpus} gpus in use"
            )
        return (
            f"waiting for an SSH host with {cpus:g} cpus and {gpus} gpus free (CloudCompute({name!r})); "
            + "; ".join(states)
        )
