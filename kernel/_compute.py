"""CloudCompute: what a Work asks of the machine that hosts it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CloudCompute:
    """The resources a Work runs with, as in Lightning App.

    Carried in the Work's spec and its events; executors that place Works (Ray, SSH) read it.
    ``name`` is ``"default"``/``"cpu"``, ``"gpu"``, or an accelerator name; ``executor`` picks the
    executor plugin that hosts the Work (the kernel's ``--executor`` when None).
    """

    name: str = "default"
    disk_size: int = 0
    idle_timeout: int | None = None
    interruptible: bool = False
    shm_size: int | None = 0
    mounts: Any = None
    colocation_group_id: str | None = None
    executor: str | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"CloudCompute name must be a non-empty string, got {self.name!r}")
        if self.disk_size < 0:
            raise ValueError(f"CloudCompute disk_size must be >= 0, got {self.disk_size}")
        from lightning_kernel.storage._mount import normalise_mounts

        # A Mount, a list of Mounts, or their dict forms (from_dict) -> Mounts; the worker provides them.
        self.mounts = normalise_mounts(self.mounts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "__cloud_compute__"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CloudCompute:
        known = {k: v for k, v in d.items() if k != "type" and k in cls.__dataclass_fields__}
        return cls(**known)


GPUS_BY_NAME: dict[str, int] = {"gpu": 1, "gpu-fast": 1, "gpu-fast-multi": 4}
"""GPUs that Lightning App's machine names stood for (``gpu`` a T4, ``gpu-fast`` a V100,
``gpu-fast-multi`` four V100s); a name that is not here asks for none unless its ``resources`` say."""

GENERIC_NAMES = frozenset({"default", "cpu", "cpu-small", "cpu-medium"})
"""Names that ask for no particular kind of machine: any host of an executor may take them."""


def requested(compute: dict[str, Any]) -> dict[str, float]:
    """What a Work's CloudCompute (as a dict) asks of a machine: ``cpus`` and ``gpus``, plus any other
    ``resources`` it names. ``resources`` wins over the name (``CloudCompute("gpu", resources={"gpus": 2})``
    asks for two GPUs); a Work asks for one CPU unless it says otherwise."""
    name = str(compute.get("name") or "default")
    asked: dict[str, float] = {"cpus": 1.0, "gpus": float(GPUS_BY_NAME.get(name, 0))}
    for key, value in dict(compute.get("resources") or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"CloudCompute resources[{key!r}] must be a number >= 0, got {value!r}")
        asked[str(key)] = float(value)
    if asked["gpus"] != int(asked["gpus"]):
        raise ValueError(f"CloudCompute asks for {asked['gpus']} GPUs: a Work gets whole GPUs")
    return asked
