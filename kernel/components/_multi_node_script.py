"""``LightningTrainerScript``: a Lightning training script run on ``num_nodes`` nodes, one
``PyTorchLightningScriptRunner`` (a ``TracerPythonScript``) each.

As in Lightning App, the flow first calls each runner's ``run()`` without arguments (the node says it
started), and once every node has an ``internal_ip``, ``run(internal_urls=[(ip, port), ...])``: the
script then runs in the node's Work with node 0 as the job's main address. When every node has
finished, the nodes are stopped (and a ``LightningTrainerScript`` that is the app's root ends the run,
as ``MultiNode`` does).

The script's Trainer learns the job from the environment: ``PL_TRAINER_NUM_NODES`` and
``PL_TRAINER_DEVICES`` (the defaults of arguments it does not pass, Lightning's rule), and the
environment torchrun gives a process (``_multi_node_spawn.Ranks``). Lightning App set ``MASTER_ADDR``,
``MASTER_PORT`` and ``NODE_RANK`` only, and left the rest to the Trainer's own launcher; with the full
torchelastic environment the Trainer takes its rank as given and starts nothing, so a node with several
CUDA devices runs its other local ranks itself: ``python <script> <args>`` with their ranks, as that
launcher does.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

from .._compute import CloudCompute
from .._flow import LightningFlow
from ..structures import List
from ..utilities._tracer import Tracer
from ._multi_node_spawn import Ranks, local_processes
from ._multi_node_trainer import TRAINER_PACKAGES, installed
from ._tracer import TracerPythonScript, added_env


def _trainer_classes() -> list[type]:
    """``lightning_kernel.trainer.Trainer``, and PL's where installed."""
    import importlib

    from lightning_kernel.trainer import Trainer

    return [Trainer, *(importlib.import_module(p).Trainer for p in TRAINER_PACKAGES if installed(p))]


class PyTorchLightningScriptRunner(TracerPythonScript):
    """One node of a ``LightningTrainerScript``: runs the script with the job's environment, then keeps
    the Trainer's ``monitor``, ``best_model_path`` (a Path, when the checkpoint is in the Work's folder)
    and ``best_model_score``."""

    def __init__(
        self,
        script_path: str,
        script_args: list[Any] | str | None = None,
        node_rank: int = 1,
        num_nodes: int = 1,
        sanity_serving: bool = False,
        cloud_compute: CloudCompute | None = None,
        parallel: bool = True,
        raise_exception: bool = True,
        env: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            script_path,
            script_args,
            env=env,
            raise_exception=raise_exception,
            parallel=parallel,
            cloud_compute=cloud_compute,
            **kwargs,
        )
        self.node_rank = node_rank
        self.num_nodes = num_nodes
        self.best_model_path: Any = None
        self.best_model_score: float | None = None
        self.monitor: str | None = None
        self.sanity_serving = sanity_serving
        self.has_finished = False
        self._lk_ranks: Ranks | None = None

    def configure_tracer(self) -> Tracer:
        tracer = super().configure_tracer()
        for cls in _trainer_classes():
            tracer.add_traced(cls, "__init__", pre_fn=self._trainer_init_pre_middleware)
        return tracer

    def run(  # type: ignore[override]  # Lightning App's signature: the nodes' addresses first
        self, internal_urls: list[tuple[str, int]] | None = None, **kwargs: Any
    ) -> None:
        """Without ``internal_urls`` the node only says it started; with them the script runs."""
        if not internal_urls:
            print(f"The node {self.node_rank} started !")
            return
        address, port = internal_urls[0][0], int(internal_urls[0][1])
        ranks = Ranks(address, port, self.num_nodes, self.node_rank, local_processes(), 0)
        env = {
            **ranks.torchelastic_env(),
            "PL_TRAINER_NUM_NODES": str(self.num_nodes),
            "PL_TRAINER_DEVICES": str(ranks.nprocs),
            "PL_TRAINER_ACCELERATOR": "auto",
        }
        self._lk_ranks = ranks
        with added_env(env):
            super().run(**kwargs)

    def _run_tracer(self, script: str, init_globals: dict[str, Any]) -> dict[str, Any]:
        # The node's other local ranks (one per further CUDA device) run the script as processes of their own.
        ranks = self._lk_ranks
        assert ranks is not None, "run() sets the ranks before the script runs"
        others = []
        for local_rank in range(1, ranks.nprocs):
            rank = Ranks(
                ranks.main_address,
                ranks.main_port,
                ranks.num_nodes,
                ranks.node_rank,
                ranks.nprocs,
                local_rank,
            )
            env = {**os.environ, **rank.torchelastic_env()}
            others.append(subprocess.Popen([sys.executable, script, *self.script_args], env=env))
        try:
            res = super()._run_tracer(script, init_globals)
        except BaseException:
            for proc in others:
                proc.kill()
            raise
        failed = [(i + 1, code) for i, proc in enumerate(others) if (code := proc.wait()) != 0]
        if failed:
            raise RuntimeError(
                f"{self._display_name()}: the script {self.script_path} failed on local ranks "
                + ", ".join(f"{rank} (exit code {code})" for rank, code in failed)
            )
        return res

    def on_after_run(self, script_globals: dict[str, Any]) -> None:
        trainer = _find_trainer(script_globals)
        if trainer is None:
            raise RuntimeError(
                f"{self._display_name()}: the script {self.script_path} left no Trainer (or LightningCLI) "
                "among its globals; keep the Trainer in a module-level variable"
            )
        callback = trainer.checkpoint_callback
        if callback is not None:
            self.monitor = callback.monitor
            if callback.best_model_score is not None:
                self.best_model_score = float(callback.best_model_score)
            # Without a monitor the best checkpoint is the latest one (Lightning's rule).
            self.best_model_path = self._work_path(callback.best_model_path or callback.last_model_path)
        self.has_finished = True

    def _work_path(self, filepath: str) -> Any:
        """A checkpoint file as the Work's Path, or None where there is none in the Work's folder (only
        global rank 0 writes checkpoints)."""
        from lightning_kernel.storage import Path

        if not filepath or not os.path.isfile(filepath):
            return None
        relative = os.path.relpath(os.path.abspath(filepath))
        if relative.startswith(os.pardir):
            return None
        return Path(f"lit://{relative}", origin=self.name or None)

    def _trainer_init_pre_middleware(
        self, trainer: Any, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], tuple[Any, ...], dict[str, Any]]:
        if self.node_rank != 0 or not self.sanity_serving:
            return {}, args, kwargs
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), _servable_validator(trainer)]
        return {}, args, kwargs

    @property
    def is_running_in_cloud(self) -> bool:
        return "LIGHTNING_APP_STATE_URL" in os.environ


def _find_trainer(script_globals: dict[str, Any]) -> Any:
    import importlib

    classes = tuple(_trainer_classes())
    clis = tuple(importlib.import_module(f"{p}.cli").LightningCLI for p in TRAINER_PACKAGES if installed(p))
    for value in script_globals.values():
        if clis and isinstance(value, clis):
            return value.trainer
        if isinstance(value, classes):
            return value
    return None


def _servable_validator(trainer: Any) -> Any:
    """The ``ServableModuleValidator`` of the PL package whose Trainer ``trainer`` is."""
    import importlib

    for name in TRAINER_PACKAGES:
        if installed(name) and isinstance(trainer, importlib.import_module(name).Trainer):
            return importlib.import_module(f"{name}.serve").ServableModuleValidator()
    raise ValueError(
        f"sanity_serving=True checks a {' or '.join(TRAINER_PACKAGES)} Trainer with its ServableModuleValidator; "
        f"the script made a {type(trainer).__module__}.{type(trainer).__qualname__}, which has none: pass "
        "sanity_serving=False"
    )


class LightningTrainerScript(LightningFlow):
    """Runs the Lightning script ``script_path`` on ``num_nodes`` nodes (see the module docstring)."""

    def __init__(
        self,
        script_path: str,
        script_args: list[Any] | str | None = None,
        num_nodes: int = 1,
        cloud_compute: CloudCompute | None = None,
        sanity_serving: bool = False,
        script_runner: type[TracerPythonScript] = PyTorchLightningScriptRunner,
        **script_runner_kwargs: Any,
    ) -> None:
        super().__init__()
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"LightningTrainerScript(num_nodes=...) must be an int >= 1, got {num_nodes!r}")
        self.script_path = os.fspath(script_path)
        self.script_args = script_args
        self.num_nodes = num_nodes
        self.sanity_serving = sanity_serving
        self._script_runner = script_runner
        self._script_runner_kwargs = script_runner_kwargs
        compute = cloud_compute or CloudCompute("default")
        self.ws = List(
            *[
                script_runner(
                    script_path=self.script_path,
                    script_args=script_args,
                    cloud_compute=copy.deepcopy(compute),
                    node_rank=node_rank,
                    sanity_serving=sanity_serving,
                    num_nodes=num_nodes,
                    **script_runner_kwargs,
                )
                for node_rank in range(num_nodes)
            ]
        )

    def run(self, **run_kwargs: Any) -> None:
        nodes: list[Any] = list(self.ws)
        for work in nodes:
            if all(w.internal_ip for w in nodes):
                work.run(internal_urls=[(w.internal_ip, w.port) for w in nodes], **run_kwargs)
                if all(w.has_finished for w in nodes):
                    # Once each has reported its call done: a stop before that would interrupt its end.
                    for w in nodes:
                        if w.has_succeeded:
                            w.stop()
                    if self.name == "root" and all(w.has_succeeded for w in nodes):
                        self.stop(
                            f"LightningTrainerScript: {self.script_path} finished on {len(nodes)} nodes"
                        )
            else:
                work.run()

    @property
    def best_model_score(self) -> float | None:
        nodes: list[Any] = list(self.ws)
        return nodes[0].best_model_score

    @property
    def best_model_paths(self) -> list[Any]:
        nodes: list[Any] = list(self.ws)
        return [node.best_model_path for node in nodes]


__all__ = ["LightningTrainerScript", "PyTorchLightningScriptRunner"]
