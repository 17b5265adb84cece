"""Start the N processes of ``devices=N`` (torchrun users skip this: their processes exist already).

- ``ddp``: PL's script launcher. This process becomes rank 0 and re-runs the same command line
  (``python script.py ...`` or ``python -m pkg ...``) for ranks 1..N-1, passing their rank in the
  environment. Run it from a script, not from a REPL.
- ``ddp_spawn`` / ``ddp_fork``: ``torch.multiprocessing`` starts N workers that run the Trainer
  call; the caller's process waits, then takes rank 0's weights, metrics and state back.
"""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ._strategy import Strategy
    from ._trainer import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_master_env() -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


class SubprocessLauncher:
    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.procs: list[subprocess.Popen[bytes]] = []

    def launch(self, function: Callable[..., Any], *args: Any, trainer: Trainer) -> Any:
        if not self.procs and "LOCAL_RANK" not in os.environ:
            self._start_children()
        self.strategy.setup_environment()
        return function(*args)

    def _start_children(self) -> None:
        strategy = self.strategy
        _set_master_env()
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            command = [sys.executable, "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
        else:
            command = [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]]
        os.environ["WORLD_SIZE"] = str(strategy.world_size)
        os.environ["NODE_RANK"] = str(strategy.node_rank)
        for local_rank in range(1, strategy.num_processes):
            env = dict(os.environ)
            env["LOCAL_RANK"] = str(local_rank)
            env["RANK"] = str(strategy.node_rank * strategy.num_processes + local_rank)
            self.procs.append(subprocess.Popen(command, env=env))
        os.environ["LOCAL_RANK"] = "0"
        os.environ["RANK"] = str(strategy.node_rank * strategy.num_processes)
        strategy.set_ranks(0, strategy.node_rank)
        atexit.register(self._wait_children)

    def _wait_children(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class _WorkerOutput:
    weights: dict[str, Any]
    callback_metrics: dict[str, Any]
    logged_metrics: dict[str, Any]
    state: Any
    loop_state: dict[str, Any]
    best_model_path: str | None
    result: Any


class SpawnLauncher:
    def __init__(self, strategy: Strategy, start_method: str) -> None:
        self.strategy = strategy
        self.start_method = start_method

    def launch(self, function: Callable[..., Any], *args: Any, trainer: Trainer) -> Any:
        _set_master_env()
        context = torch.multiprocessing.get_context(self.start_method)
        queue = context.SimpleQueue()
        name = function.__name__
        torch.multiprocessing.start_processes(
            _worker,
            args=(trainer, name, args, queue),
            nprocs=self.strategy.num_processes,
            start_method=self.start_method,
        )
        path = queue.get()
        try:
            output: _WorkerOutput = torch.load(path, weights_only=False)
        finally:
            os.remove(path)
        return _recover(trainer, output)


def _unshare(args: tuple[Any, ...]) -> None:
    """torch.multiprocessing hands CPU tensors to the workers in shared memory: every rank would step
    the same parameters. Each worker takes its own copy."""
    for arg in args:
        if isinstance(arg, torch.nn.Module):
            with torch.no_grad():
                for tensor in itertools.chain(arg.parameters(), arg.buffers()):
                    tensor.data = tensor.data.clone()


def _worker(process_idx: int, trainer: Trainer, name: str, args: tuple[Any, ...], queue: Any) -> None:
    _unshare(args)
    strategy = trainer.strategy
    strategy.set_ranks(process_idx, strategy.node_rank)
    os.environ["LOCAL_RANK"] = str(process_idx)
    os.environ["RANK"] = str(strategy.global_rank)
    os.environ["WORLD_SIZE"] = str(strategy.world_size)
    strategy.setup_environment()
    result = getattr(trainer, name)(*args)
    if strategy.is_global_zero:
        # one file, not tensors in the queue: shared-memory tensors die with this process
        fd, path = tempfile.mkstemp(suffix=".pt", prefix="lk-spawn-")
        os.close(fd)
        ckpt = trainer.checkpoint_callback
        output = _WorkerOutput(
            weights={k: v.cpu() for k, v in trainer.lightning_module.state_dict().items()},
            callback_metrics={k: v.cpu() for k, v in trainer.callback_metrics.items()},
            logged_metrics={k: v.cpu() for k, v in trainer.logged_metrics.items()},
            state=trainer.state,
            loop_state=trainer.fit_loop.state_dict(),
            best_model_path=getattr(ckpt, "best_model_path", None),
            result=result,
        )
        torch.save(output, path)
        queue.put(path)
    strategy.barrier()
    # leave the group together: a rank still connected when its peer's process exits can abort
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _recover(trainer: Trainer, output: _WorkerOutput) -> Any:
    module = trainer.lightning_module
    module.load_state_dict(output.weights)
    connector = trainer._logger_connector
    connector._callback_metrics.update(output.callback_metrics)
    connector._logged_metrics.update(output.logged_metrics)
    trainer.state = output.state
    trainer.fit_loop.load_state_dict(output.loop_state)
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and output.best_model_path is not None and hasattr(ckpt, "best_model_path"):
        ckpt.best_model_path = output.best_model_path
    return output.result


def make_launcher(strategy: Strategy) -> Any:
    if strategy.kind in ("ddp_spawn",):
        return SpawnLauncher(strategy, "spawn")
    if strategy.kind in ("ddp_fork", "ddp_notebook"):
        return SpawnLauncher(strategy, "fork")
    if "LOCAL_RANK" in os.environ:
        # a child started by SubprocessLauncher: its rank is in the environment already
        strategy.set_ranks(int(os.environ["LOCAL_RANK"]), int(os.environ.get("NODE_RANK", "0")))
    return SubprocessLauncher(strategy)
