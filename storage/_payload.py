"""``Payload``: a Python value handed from one Work to another through the artifact store.

The value is pickled with cloudpickle into the content-addressed store when the Work's state is
written (``to_dict``), and only its ref travels in state and events. The reader unpickles lazily,
on the first ``.value``, after checking the bytes against the ref: nothing is unpickled unless it
came from the kernel's own store unchanged.

The ref is computed once: changing the object in place after it was handed over does not upload
it again; assign ``payload.value = ...`` (or a new Payload) to hand over a new value.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from lightning_kernel.errors import ArtifactError

from ._artifacts import ArtifactStore
from ._context import current, current_or_none

PAYLOAD_TYPE = "__payload__"


def is_payload_dict(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("type") == PAYLOAD_TYPE and isinstance(obj.get("ref"), str)


class Payload:
    """A picklable value set on a Work in ``run()`` and read by another Work with ``.value``."""

    __lk_state_value__ = True

    def __init__(self, value: Any) -> None:
        self._value = value
        self._loaded = True
        self._ref: str | None = None
        self._origin: str | None = None

    def __repr__(self) -> str:
        where = f"ref={self._ref[:12]}" if self._ref else "unsaved"
        return f"Payload({where}, origin={self._origin!r})"

    @property
    def origin_name(self) -> str:
        return self._origin or ""

    @property
    def value(self) -> Any:
        """The value; loaded from the store (inside a Work's ``run()``) the first time it is read."""
        if not self._loaded:
            assert self._ref is not None  # a Payload that is not loaded came from from_dict
            import cloudpickle

            ctx = current("Payload.value")
            started = time.monotonic()
            data = ctx.store.get_bytes(self._ref)
            if hashlib.sha256(data).hexdigest() != self._ref:  # never unpickle bytes we did not write
                raise ArtifactError(
                    f"the Payload {self._ref} in {ctx.store.url} is corrupt: its bytes have another sha256"
                )
            try:
                self._value = cloudpickle.loads(data)
            except Exception as exc:
                raise ArtifactError(
                    f"the Payload {self._ref[:12]} from {self.origin_name or 'another Work'} cannot be "
                    f"unpickled here ({type(exc).__name__}: {exc}); its classes must be importable in "
                    f"{ctx.work_name}"
                ) from exc
            self._loaded = True
            ctx.emit(
                "payload.loaded",
                {
                    "run": ctx.run_id,
                    "work": ctx.work_name,
                    "origin": self._origin,
                    "ref": self._ref,
                    "bytes": len(data),
                    "duration_s": round(time.monotonic() - started, 6),
                },
            )
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value, self._loaded, self._ref = value, True, None

    def save(self, store: ArtifactStore | None = None) -> dict[str, Any]:
        """Pickle the value into ``store`` (the current Work's, by default) once; the JSON form."""
        if self._ref is None:
            import cloudpickle

            ctx = current_or_none()
            if store is None:
                store = current("saving a Payload").store
            data = cloudpickle.dumps(self._value)
            self._ref = store.put_bytes(data)
            if ctx is not None:
                self._origin = self._origin or ctx.work_name
                ctx.emit(
                    "payload.saved",
                    {"run": ctx.run_id, "work": ctx.work_name, "ref": self._ref, "bytes": len(data)},
                )
        return {"type": PAYLOAD_TYPE, "ref": self._ref, "origin": self._origin}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in state and arguments; saves the value first if needed."""
        return self.save()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Payload:
        """A Payload that loads its value from the store when ``.value`` is first read."""
        if not is_payload_dict(d):
            raise ArtifactError(f"{d!r} is not the JSON form of a Payload (type '__payload__' and a ref)")
        p = cls.__new__(cls)
        p._value, p._loaded, p._ref, p._origin = None, False, d["ref"], d.get("origin") or None
        return p
