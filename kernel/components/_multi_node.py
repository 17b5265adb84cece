"""``MultiNode``: a flow that runs ``num_nodes`` copies of a Work as the nodes of one distributed job.

As in Lightning App, the nodes are parallel Works in ``self.ws`` (a ``List``). Nothing runs until every
node's worker has started and said where it is (its ``internal_ip``, published with the Work's port by
the worker before any ``run()``, see ``_endpoint.py``); then each node's ``run()`` gets node 0's address
and port, ``num_nodes`` and its own ``node_rank``. A node that succeeded is stopped, which frees its
machine.

Where Lightning App 2.3.2 differs: run locally (not ``--cloud``), it warned and ran a single node.
Here every executor runs all ``num_nodes`` (as local processes on one machine, on SSH hosts, or on Ray),
since a job of one node is not the job the app describes. And a ``MultiNode`` that is the app's root ends
the run once every node has succeeded: it has nothing left to do, and ``lightning-kernel run app`` then
exits 0, where Lightning App kept an idle app up until Ctrl-C.

The components built on it (``PyTorchSpawnMultiNode``, ``LightningTrainerMultiNode``,
``FabricMultiNode``) change how a node calls the user's ``run()``: :func:`node_class` makes, per
component, a subclass of the user's Work whose ``run`` takes the node's coordinates and calls a
launcher with the user's own ``run``. Lightning App set a private ``_run_executor_cls`` on the user's
class instead, which changed every instance of that class, in or out of the component; a subclass
changes only the nodes, and travels to the workers with the app (pickled by value) like any Work.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from .._compute import CloudCompute
from .._flow import LightningFlow
from .._work import LightningWork
from ..structures import List

NodeLauncher = Callable[[LightningWork, Callable[..., Any], dict[str, Any]], None]
"""``launcher(work, user_run, node)``: runs one node; ``node`` holds ``main_address``, ``main_port``,
``num_nodes`` and ``node_rank``."""

NODE_ARGS = ("main_address", "main_port", "num_nodes", "node_rank")


def raw_run(work_cls: type[LightningWork]) -> Callable[..., Any]:
    """The user's own ``run`` of ``work_cls``, not the dispatching wrapper around it."""
    fn = work_cls.run
    return getattr(fn, "__lk_user_run__", fn)


def check_work_class(component: str, work_cls: Any, call: str, *args: Any, **kwargs: Any) -> None:
    """``TypeError`` unless ``work_cls`` is a LightningWork whose ``run`` accepts the call ``component``
    makes (shown as ``call``): said when the app is built, not by each node as it starts."""
    if not (isinstance(work_cls, type) and issubclass(work_cls, LightningWork)):
        raise TypeError(f"{component} needs a LightningWork class as work_cls, got {work_cls!r}")
    try:
        inspect.signature(raw_run(work_cls)).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"{component} calls {work_cls.__qualname__}.{call} on each node, which its run() does not "
            f"accept ({exc})"
        ) from None


def node_class(work_cls: type[LightningWork], launcher: NodeLauncher) -> type[LightningWork]:
    """A subclass of ``work_cls`` whose ``run(main_address, main_port, num_nodes, node_rank)`` hands the
    node and the user's ``run`` to ``launcher`` (see the module docstring). It keeps the class's name,
    so the Works read as the user's in the UI and in ``history``."""
    user_run = raw_run(work_cls)

    def run(self: LightningWork, main_address: str, main_port: int, num_nodes: int, node_rank: int) -> None:
        node = {
            "main_address": main_address,
            "main_port": main_port,
            "num_nodes": num_nodes,
            "node_rank": node_rank,
        }
        launcher(self, user_run, node)

    namespace = {
        "run": run,
        "__module__": work_cls.__module__,
        "__qualname__": work_cls.__qualname__,
        "__doc__": work_cls.__doc__,
    }
    return type(work_cls.__name__, (work_cls,), namespace)


class MultiNode(LightningFlow):
    """Runs ``num_nodes`` parallel Works of ``work_cls`` as the nodes of one job (see the module docstring).

    ``work_cls(*work_args, cloud_compute=<a copy of cloud_compute>, parallel=True, **work_kwargs)``
    makes each node; its ``run(main_address, main_port, num_nodes, node_rank)`` runs once all nodes
    have started.
    """

    def __init__(
        self,
        work_cls: type[LightningWork],
        num_nodes: int,
        cloud_compute: CloudCompute,
        *work_args: Any,
        **work_kwargs: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"{name}(num_nodes=...) must be an int >= 1, got {num_nodes!r}")
        if not isinstance(cloud_compute, CloudCompute):
            raise TypeError(f"{name}(cloud_compute=...) must be a CloudCompute, got {cloud_compute!r}")
        if "parallel" in work_kwargs:
            raise TypeError(
                f"{name} runs its nodes in parallel: drop parallel={work_kwargs['parallel']!r} from "
                f"the arguments of {getattr(work_cls, '__qualname__', work_cls)}"
            )
        self._check(work_cls)
        node_cls = self._node_class(work_cls)
        # A copy each: a node's CloudCompute is its own, as Lightning App's clone() made it.
        nodes = [
            node_cls(
                *work_args, **{**work_kwargs, "cloud_compute": copy.deepcopy(cloud_compute), "parallel": True}
            )
            for _ in range(num_nodes)
        ]
        self.ws = List(*nodes)

    def _check(self, work_cls: Any) -> None:
        """Refuse a ``work_cls`` whose ``run()`` cannot take what the nodes are given."""
        node = dict.fromkeys(NODE_ARGS)
        check_work_class(type(self).__name__, work_cls, f"run({', '.join(f'{k}=...' for k in node)})", **node)

    def _node_class(self, work_cls: type[LightningWork]) -> type[LightningWork]:
        """The class of the nodes: the user's own here; a launching subclass in the components built on this."""
        return work_cls

    def run(self) -> None:
        nodes = list(self.ws)
        if not all(w.internal_ip for w in nodes):
            return  # not every node's worker has started yet
        main = nodes[0]
        for node_rank, work in enumerate(nodes):
            work.run(
                main_address=main.internal_ip,
                main_port=main.port,
                num_nodes=len(nodes),
                node_rank=node_rank,
            )
            if work.has_succeeded:
                work.stop()
        if self.name == "root" and all(w.has_succeeded for w in nodes):
            self.stop(f"{type(self).__name__}: the {len(nodes)} nodes of {type(main).__qualname__} succeeded")


__all__ = ["MultiNode"]
