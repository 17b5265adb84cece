"""Lightning App's ``lightning.app.utilities.app_helpers`` module path: ``pretty_state``."""

from __future__ import annotations

from typing import Any

__all__ = ["pretty_state"]


def pretty_state(state: dict[str, Any]) -> dict[str, Any]:
    """A component's ``state`` without its hidden (``_``) attributes, flows and works alike, and
    without the empty ``vars``/``flows``/``works`` parts, as Lightning App shows it."""
    out: dict[str, Any] = {}
    shown = {k: v for k, v in (state.get("vars") or {}).items() if not k.startswith("_")}
    if shown:
        out["vars"] = shown
    for part in ("flows", "works"):
        children = state.get(part) or {}
        if children:
            out[part] = {name: pretty_state(child) for name, child in children.items()}
    return out
