"""The ``[executors.ray]`` table of ``lightning-kernel.toml``, checked: every error names the field and
says what is expected.

::

    [executors.ray]
    address = "auto"              # "ray://head:10001", "HOST:PORT", "local" (the kernel starts one);
                                  # RAY_ADDRESS wins over the default, as for any Ray program
    namespace = "lightning-kernel"  # the Ray namespace of the Works' actors
    max_interruptions = 5         # relaunches per Work after its node was lost; never a failure
    nats_url = "nats://10.0.0.5:4222"  # how the cluster's nodes reach the kernel's NATS (default: its URL)
    work_dir = "/data/works"      # each node's folder for the Works' folders (default: the node's
                                  # LK_WORK_DIR, else ~/.lightning-kernel/works)
    autoscaling = false           # true: a Work no node can hold waits for the autoscaler, not fails
    runtime_env = { pip = ["scikit-learn"] }   # given to every Work's actor
    spot_labels = { "ray.io/market-type" = "spot" }  # what marks a node interruptible=True goes to

    [executors.ray.machines.gpu-a100]  # a CloudCompute name, added or overridden
    num_cpus = 8
    num_gpus = 1
    memory = "64GB"
    resources = { accelerator_type_A100 = 0.001 }

The machine table starts from Lightning App's names (``MACHINES``); a name it does not hold asks for
one CPU (and the Work's ``CloudCompute.resources``, which win over the table: ``cpus``/``gpus``/
``memory`` or any custom resource).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from lightning_kernel.errors import ConfigError

_TOP_KEYS = {
    "address",
    "namespace",
    "max_interruptions",
    "nats_url",
    "work_dir",
    "autoscaling",
    "runtime_env",
    "spot_labels",
    "machines",
    "data_dir",
}
_MACHINE_KEYS = {"num_cpus", "num_gpus", "memory", "resources"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class Machine:
    """What a CloudCompute name asks of a Ray node."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int = 0
    """Bytes of Ray's ``memory`` resource; 0 asks for none."""
    resources: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU"]
        if self.num_gpus:
            parts.append(f"{self.num_gpus:g} GPU")
        if self.memory:
            parts.append(f"{self.memory / 2**30:g} GiB memory")
        parts += [f"{v:g} {k}" for k, v in sorted(self.resources.items())]
        return ", ".join(parts)


MACHINES: dict[str, Machine] = {
    "default": Machine(1, 0),
    "cpu": Machine(1, 0),
    "cpu-small": Machine(2, 0),
    "cpu-medium": Machine(8, 0),
    "gpu": Machine(4, 1),
    "gpu-fast": Machine(8, 1),
    "gpu-fast-multi": Machine(32, 4),
}
"""Lightning App's machine names as Ray resources: the CPUs and GPUs of the machines they stood for
(``gpu``: 4 CPUs and a T4; ``gpu-fast``: 8 and a V100; ``gpu-fast-multi``: 32 and four V100s). Memory
is not asked for: Ray counts it apart from the machine's RAM and a laptop's cluster rarely has it."""


@dataclass(frozen=True)
class RayConfig:
    address: str = "auto"
    namespace: str = "lightning-kernel"
    max_interruptions: int = 5
    nats_url: str = ""
    work_dir: str = ""
    autoscaling: bool = False
    runtime_env: dict[str, Any] = field(default_factory=dict)
    spot_labels: dict[str, str] = field(default_factory=lambda: {"ray.io/market-type": "spot"})
    machines: dict[str, Machine] = field(default_factory=lambda: dict(MACHINES))


def _size(where: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f'{where} must be bytes or a size like "16GB", got {value!r}')
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()[:1]])


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where} must be a number >= 0, got {value!r}")
    return float(value)


def _machine(name: str, raw: Any) -> Machine:
    where = f"[executors.ray.machines.{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table, not {type(raw).__name__}")
    unknown = sorted(set(raw) - _MACHINE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(_MACHINE_KEYS)}")
    resources = raw.get("resources", {})
    if not isinstance(resources, dict):
        raise ConfigError(f"{where} resources must be a table of numbers")
    return Machine(
        num_cpus=_number(f"{where} num_cpus", raw.get("num_cpus", 1)),
        num_gpus=_number(f"{where} num_gpus", raw.get("num_gpus", 0)),
        memory=_size(f"{where} memory", raw.get("memory", 0)),
        resources={str(k): _number(f"{where} resources.{k}", v) for k, v in resources.items()},
    )


def parse(config: dict[str, Any], environ: dict[str, str] | None = None) -> RayConfig:
    env = os.environ if environ is None else environ
    unknown = sorted(set(config) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"[executors.ray]: unknown key(s) {unknown}; known: {sorted(_TOP_KEYS - {'data_dir'})}"
        )
    address = config.get("address") or env.get("RAY_ADDRESS") or "auto"
    if not isinstance(address, str):
        raise ConfigError(f"[executors.ray] address must be a string, got {address!r}")
    maxi = config.get("max_interruptions", 5)
    if isinstance(maxi, bool) or not isinstance(maxi, int) or maxi < 0:
        raise ConfigError(f"[executors.ray] max_interruptions must be an integer >= 0, got {maxi!r}")
    for key, kind in (("namespace", str), ("nats_url", str), ("work_dir", str), ("autoscaling", bool)):
        if key in config and not isinstance(config[key], kind):
            raise ConfigError(f"[executors.ray] {key} must be a {kind.__name__}, got {config[key]!r}")
    for key in ("runtime_env", "spot_labels", "machines"):
        if key in config and not isinstance(config[key], dict):
            raise ConfigError(f"[executors.ray] {key} must be a table, got {config[key]!r}")
    nats_url = config.get("nats_url", "")
    if nats_url and not nats_url.startswith(("nats://", "tls://")):
        raise ConfigError(f"[executors.ray] nats_url must be a nats:// or tls:// URL, got {nats_url!r}")
    machines = dict(MACHINES)
    for name, raw in dict(config.get("machines", {})).items():
        machines[str(name)] = _machine(str(name), raw)
    defaults = RayConfig()
    return RayConfig(
        address=address,
        namespace=config.get("namespace", defaults.namespace),
        max_interruptions=maxi,
        nats_url=nats_url,
        work_dir=config.get("work_dir", defaults.work_dir),
        autoscaling=bool(config.get("autoscaling", False)),
        runtime_env=dict(config.get("runtime_env", {})),
        spot_labels={
            str(k): str(v) for k, v in dict(config.get("spot_labels", defaults.spot_labels)).items()
        },
        machines=machines,
    )


def resources_for(config: RayConfig, compute: dict[str, Any]) -> Machine:
    """What a Work's CloudCompute (as a dict) asks of a Ray node: its name's row of the machine table,
    with its ``resources`` over it (``cpus``, ``gpus``, ``memory`` or any custom resource)."""
    name = str(compute.get("name") or "default")
    base = config.machines.get(name, Machine())
    cpus, gpus, memory = base.num_cpus, base.num_gpus, base.memory
    custom = dict(base.resources)
    for key, value in dict(compute.get("resources") or {}).items():
        if key == "memory":
            memory = _size("CloudCompute resources['memory']", value)
            continue
        number = _number(f"CloudCompute resources[{key!r}]", value)
        if key in ("cpus", "num_cpus", "CPU"):
            cpus = number
        elif key in ("gpus", "num_gpus", "GPU"):
            gpus = number
        else:
            custom[str(key)] = number
    shm = compute.get("shm_size") or 0
    if shm and memory < int(shm) * 2**20:
        # Lightning App's shm_size is in MB; /dev/shm lives in the node's memory.
        memory = max(memory, int(shm) * 2**20)
    return Machine(cpus, gpus, memory, custom)
