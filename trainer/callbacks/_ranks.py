"""Decisions every rank must share, so that no rank waits in a collective the others skip.

A checkpoint save or an early stop taken on one rank only would hang DDP at the next barrier. The
Trainer's strategy offers ``broadcast`` (rank zero's value everywhere) and may offer
``reduce_boolean_decision``; a Trainer without a strategy (a single process) decides alone.
"""

from __future__ import annotations

from typing import Any


def broadcast(trainer: Any, obj: Any) -> Any:
    """Rank zero's ``obj`` on every rank."""
    strategy = getattr(trainer, "strategy", None)
    return obj if strategy is None else strategy.broadcast(obj)


def all_ranks(trainer: Any, decision: bool) -> bool:
    """True when every rank decided True (rank zero decides where the strategy cannot reduce)."""
    reduce = getattr(getattr(trainer, "strategy", None), "reduce_boolean_decision", None)
    if reduce is not None:
        return bool(reduce(decision))
    return bool(broadcast(trainer, decision))


def any_rank(trainer: Any, decision: bool) -> bool:
    """True when some rank decided True."""
    reduce = getattr(getattr(trainer, "strategy", None), "reduce_boolean_decision", None)
    if reduce is not None:
        return bool(reduce(decision, all=False))
    if int(getattr(trainer, "world_size", 1) or 1) > 1:
        import torch
        import torch.distributed as dist

        flag = torch.tensor(int(decision))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
    return decision
