"""``PyTorchSpawnMultiNode``, and how a node of it (or of the Trainer and Fabric components) runs.

A node runs its user code in ``nprocs`` processes started with ``torch.multiprocessing`` (``spawn``):
one per CUDA device, or one on a machine without CUDA, as in Lightning App. Local rank ``r`` of node
``n`` is global rank ``n * nprocs + r`` of a world of ``num_nodes * nprocs`` processes.

The processes are fresh interpreters, so the Work goes to them pickled (cloudpickle, without what ties
it to the worker), what the app file defines by value: cloudpickle then names its code
``<dynamic-code>``, and a traceback from these processes shows the app's line numbers without its file
name. (A spawned process can import the app file by the kernel's name for it, see ``_app._importable``,
but that runs the app's top-level code once more per process, without the run's ``--app_args``.)

What the processes do comes back to the worker over one pipe each: every line they print
(the Work's log, as if the worker printed it) and, from local rank 0, each change of the Work's public
attributes, which the worker assigns on its own Work so that it is recorded as any state change.
Lightning App did the same with a state observer on local rank 0. A Payload or a Path made in such a
process reaches the state only through its JSON form, so a new Payload (which needs the artifact store)
cannot be made there.

The node's call ends when every process has; the first that fails ends the others and fails the call
with its traceback, and a stopped call ends them too. Each process leaves the process group together
with the others (a barrier, then ``destroy_process_group``): gloo aborts a process that exits while a
peer still talks to it.

Approaches weighed: running local rank 0 in the worker itself would have spared one process per node
and made state and Paths direct, but it makes two ways to run a node: on a machine without CUDA
(nprocs 1) the user's code would run in the worker, and the spawned way would be exercised only on
machines with several GPUs. Lightning App spawned every rank; so does this.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .._compute import CloudCompute
from .._iteration import RUNTIME_ATTRS
from .._process import quiet
from .._tee import LineTee
from .._work import LightningWork
from ..errors import WorkRunError
from ._multi_node import MultiNode, check_work_class, node_class

LEAVE_TIMEOUT_S = 10.0
"""How long a process waits at the end for its peers before it leaves the process group anyway."""


@dataclass(frozen=True)
class Ranks:
    """Where one process of a node stands in the job."""

    main_address: str
    main_port: int
    num_nodes: int
    node_rank: int
    nprocs: int
    local_rank: int

    @property
    def global_rank(self) -> int:
        return self.node_rank * self.nprocs + self.local_rank

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.nprocs

    def torchelastic_env(self) -> dict[str, str]:
        """The environment torchrun gives a process: a Trainer (or Fabric) that finds it takes its rank
        from it and starts no processes of its own."""
        return {
            "MASTER_ADDR": self.main_address,
            "MASTER_PORT": str(self.main_port),
            "GROUP_RANK": str(self.node_rank),
            "NODE_RANK": str(self.node_rank),
            "RANK": str(self.global_rank),
            "LOCAL_RANK": str(self.local_rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_WORLD_SIZE": str(self.nprocs),
            "TORCHELASTIC_RUN_ID": "1",
        }


Body = Callable[[LightningWork, Callable[..., Any], Ranks], None]
"""What one process of a node does: ``body(work, user_run, ranks)`` (a module-level function)."""


def local_processes() -> int:
    """The processes of a node on this machine: one per CUDA device, else one."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def launch_node(work: LightningWork, user_run: Callable[..., Any], node: dict[str, Any], body: Body) -> None:
    """Run ``body`` in each of the node's processes, relaying their output and state (module docstring)."""
    import cloudpickle
    import torch.multiprocessing as mp

    nprocs = local_processes()
    ctx = mp.get_context("spawn")
    pipes = [ctx.Pipe(duplex=False) for _ in range(nprocs)]
    for module in {*(c.__module__ for c in type(work).__mro__), user_run.__module__}:
        if _loaded_from_path(sys.modules.get(module)):
            cloudpickle.register_pickle_by_value(sys.modules[module])
    try:
        payload = cloudpickle.dumps((_portable(work), user_run, body, node, nprocs))
    except Exception as exc:
        raise WorkRunError(
            f"{work.name}: a node's processes get the Work pickled, and it cannot be ({type(exc).__name__}: "
            f"{exc}); keep what cannot be pickled out of its attributes, or make it in run()"
        ) from exc
    writers = [w for _, w in pipes]
    procs = mp.start_processes(
        _child, args=(payload, writers), nprocs=nprocs, join=False, start_method="spawn"
    )
    for w in writers:
        w.close()  # each process holds its own end: a pipe ends when its process does
    relay = _Relay(work, [r for r, _ in pipes])
    relay.start()
    try:
        while not procs.join():
            pass
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()  # a stopped call, or the worker's own failure
        for p in procs.processes:
            p.join(LEAVE_TIMEOUT_S)
            if p.is_alive():
                p.kill()
        # A process the user's code left behind (a forked grandchild) may keep a pipe open: not waited for.
        relay.join(LEAVE_TIMEOUT_S)
    relay.raise_failure()


def _loaded_from_path(module: Any) -> bool:
    """Whether ``module`` was loaded from a file under another name, as the kernel and the workers load
    the app file (``lk_app_<name>_<hash>``): a fresh process cannot import it by name, so what it
    defines goes to the node's processes by value."""
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return False
    stem = os.path.splitext(os.path.basename(file))[0]
    return stem not in (module.__name__.rpartition(".")[2], "__init__")


def _portable(work: LightningWork) -> LightningWork:
    """The Work as a spawned process gets it: without the worker's hooks and the kernel's ties."""
    clone = copy.copy(work)
    for attr in RUNTIME_ATTRS:
        clone.__dict__.pop(attr, None)
    return clone


class _Relay(threading.Thread):
    """In the worker: the node's processes' lines printed here, and local rank 0's state assigned here."""

    def __init__(self, work: LightningWork, readers: list[Any]) -> None:
        super().__init__(name="lk-node-relay", daemon=True)
        self.work = work
        self.readers = readers
        self.failure: BaseException | None = None

    def run(self) -> None:
        quiet(self._relay)()

    def _relay(self) -> None:
        from multiprocessing.connection import wait

        pending: list[Any] = list(self.readers)
        while pending:
            for reader in cast(list[Any], wait(pending)):
                try:
                    kind, value = reader.recv()
                except EOFError:
                    pending.remove(reader)
                    reader.close()
                    continue
                if kind == "state":
                    self._assign(value)
                else:
                    (sys.stdout if kind == "stdout" else sys.stderr).write(value + "\n")

    def _assign(self, changes: dict[str, Any]) -> None:
        if self.failure is not None:
            return
        try:
            for name, value in changes.items():
                setattr(self.work, name, self.work._lk_revive(name, value))
        except Exception as exc:  # state the kernel cannot record: the call fails with it
            self.failure = exc

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


class _Sender:
    """In a node's process: what goes back to the worker, one message at a time (threads print too)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def __call__(self, kind: str, value: Any) -> None:
        with self.lock:
            self.conn.send((kind, value))


def _child(local_rank: int, payload: bytes, writers: list[Any]) -> None:
    """One process of a node (started by ``torch.multiprocessing``, which reports its exceptions)."""
    for i, other in enumerate(writers):
        if i != local_rank:
            other.close()
    send = _Sender(writers[local_rank])
    sys.stdout = LineTee(lambda line: send("stdout", line), None)
    sys.stderr = LineTee(lambda line: send("stderr", line), None)
    import cloudpickle

    work, user_run, body, node, nprocs = cloudpickle.loads(payload)
    ranks = Ranks(**node, nprocs=nprocs, local_rank=local_rank)
    if local_rank == 0:
        _observe(work, send)
    try:
        body(work, user_run, ranks)
        _leave_process_group()
    finally:
        if local_rank == 0:
            work._lk_on_change("", None)  # in-place changes since the last assignment
        sys.stdout.flush()
        sys.stderr.flush()


_MISSING = object()


def _observe(work: LightningWork, send: _Sender) -> None:
    """Send each change of the Work's state to the worker: everything that differs at each assignment,
    so in-place edits (a list appended to) travel with the next one, as in the worker itself."""
    last = work._lk_vars()

    def changed(_attr: str, _value: Any) -> None:
        now = work._lk_vars()
        diff = {k: v for k, v in now.items() if last.get(k, _MISSING) != v}
        if diff:
            last.update(diff)
            send("state", diff)

    object.__setattr__(work, "_lk_on_change", changed)


def _leave_process_group() -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    with contextlib.suppress(Exception):
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=LEAVE_TIMEOUT_S))
        else:
            dist.barrier()
    dist.destroy_process_group()


def _spawn_body(work: LightningWork, user_run: Callable[..., Any], ranks: Ranks) -> None:
    """PyTorchSpawnMultiNode's process: the process group first (NCCL with CUDA, else gloo), then
    ``run(world_size, node_rank, global_rank, local_rank)``."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        if ranks.world_size > 1:
            raise RuntimeError(
                f"{work.name}: this PyTorch has no torch.distributed, which a world of {ranks.world_size} "
                "processes needs"
            )
    elif not dist.is_initialized():
        dist.init_process_group(
            "nccl" if torch.cuda.is_available() else "gloo",
            init_method=f"tcp://{ranks.main_address}:{ranks.main_port}",
            rank=ranks.global_rank,
            world_size=ranks.world_size,
        )
    user_run(work, ranks.world_size, ranks.node_rank, ranks.global_rank, ranks.local_rank)


def _spawn_node(work: LightningWork, user_run: Callable[..., Any], node: dict[str, Any]) -> None:
    launch_node(work, user_run, node, _spawn_body)


class SpawnedMultiNode(MultiNode):
    """The components whose nodes run in spawned processes: Lightning App's argument order
    (``work_cls, cloud_compute, num_nodes``), the user's ``run`` checked against ``CALL`` (with
    ``CALL_ARGS`` as sample arguments), and ``LAUNCHER`` running each node."""

    CALL = "run()"
    CALL_ARGS: tuple[Any, ...] = ()
    LAUNCHER: Callable[..., None]

    def __init__(
        self,
        work_cls: type[LightningWork],
        cloud_compute: CloudCompute,
        num_nodes: int,
        *work_args: Any,
        **work_kwargs: Any,
    ) -> None:
        super().__init__(work_cls, num_nodes, cloud_compute, *work_args, **work_kwargs)

    def _check(self, work_cls: Any) -> None:
        check_work_class(type(self).__name__, work_cls, self.CALL, *self.CALL_ARGS)

    def _node_class(self, work_cls: type[LightningWork]) -> type[LightningWork]:
        return node_class(work_cls, type(self).LAUNCHER)


class PyTorchSpawnMultiNode(SpawnedMultiNode):
    """``MultiNode`` whose nodes each run ``work_cls.run(world_size, node_rank, global_rank, local_rank)``
    in ``nprocs`` spawned processes, the process group already set up (see the module docstring)."""

    CALL = "run(world_size, node_rank, global_rank, local_rank)"
    CALL_ARGS = (1, 0, 0, 0)
    LAUNCHER = staticmethod(_spawn_node)


__all__ = ["PyTorchSpawnMultiNode"]
