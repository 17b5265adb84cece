"""What may be part of a component's state, and how values are compared and copied.

State is every public attribute, and it must be JSON: the fold, history and replay all read it from
JSON event bodies. Values are normalised (tuples become lists) on the way in, so the live object,
the event and the replayed state always agree.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import StateError

_SCALARS = (str, int, float, bool, type(None))


def normalise(component: str, attribute: str, value: Any) -> Any:
    """``value`` as it reads back from JSON; ``StateError`` naming the attribute when it cannot."""
    if type(value) in _SCALARS:
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise StateError(component, attribute, f"{value!r} is not valid JSON; use None or a string")
        return value
    to_state = getattr(value, "to_dict", None)
    if callable(to_state) and getattr(value, "__lk_state_value__", False):
        return to_state()
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StateError(
            component,
            attribute,
            f"a value of type {type(value).__name__} is not JSON-serialisable ({exc}); public attributes "
            "are the component's state: keep it private (name it with a leading underscore), or "
            "hand objects between Works with lightning_kernel.Payload",
        ) from None


def public_vars(obj: object) -> dict[str, Any]:
    """The public, non-component attributes of ``obj``, in definition order."""
    from ._component import is_component  # the component module imports this one

    return {k: v for k, v in vars(obj).items() if not k.startswith("_") and not is_component(v)}
