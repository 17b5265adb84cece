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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "__cloud_compute__"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CloudCompute:
        known = {k: v for k, v in d.items() if k != "type" and k in cls.__dataclass_fields__}
        return cls(**known)
