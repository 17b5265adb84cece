"""The random generators' states: saved in checkpoints and around the sanity check (PL's isolate_rng)."""

from __future__ import annotations

import random
import sys
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import torch


def capture_rng() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy = sys.modules.get("numpy")  # not imported means not used: importing it here would cost 0.1 s
    if numpy is not None:
        states["numpy"] = _numpy_state(numpy)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any] | None) -> None:
    if not states:
        return
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "numpy" in states:
        import numpy

        numpy.random.set_state(_numpy_tuple(numpy, states["numpy"]))
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


def _numpy_state(numpy: Any) -> dict[str, Any]:
    # numpy's own tuple holds an ndarray, a global that torch.load(weights_only=True), the default since
    # torch 2.6, refuses: the checkpoint keeps plain ints and floats instead.
    kind, keys, pos, has_gauss, cached = numpy.random.get_state()
    return {
        "kind": str(kind),
        "keys": [int(k) for k in keys],
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _numpy_tuple(numpy: Any, state: Any) -> Any:
    if not isinstance(state, dict):  # a checkpoint written before states became plain values
        return state
    keys = numpy.asarray(state["keys"], dtype=numpy.uint32)
    return (state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])


@contextmanager
def isolate_rng() -> Generator[None, None, None]:
    """Whatever runs inside leaves the generators as it found them."""
    states = capture_rng()
    try:
        yield
    finally:
        restore_rng(states)
