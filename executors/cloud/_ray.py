"""Ray, behind one module: the only one of the project that imports ``ray``.

A Work's worker is hosted by a Ray **actor**, not a task: a named, detached actor
(``lk.<run>.<work>.<attempt>`` in the executor's namespace) outlives the kernel's Ray connection, so a
kernel that restarts finds it by name and re-attaches (a task cannot be found again, nor asked to
stop gracefully). The actor is async, and runs the shared worker runtime as a child process
(``python -m lightning_kernel._worker``), not in itself: the runtime's signal handling, the user's own
(a Trainer's SIGTERM handler) and its exit codes stay as on every other executor, and the actor stays
free to answer ``wait``, ``terminate`` and ``ping`` while the Work runs. The child is killed with its
actor (``LK_DIE_WITH_PARENT``), and the actor exits by itself once its worker ended and no kernel
collected that end within ``LINGER_S`` (a kernel that died: nothing is left holding the cluster's CPUs).

The actor asks the Work's resources (``num_cpus``, ``num_gpus``, ``memory``, custom ones) itself, so
Ray places it, queues it while the cluster is full, and sets its ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import ray
from lightning_kernel.executors._proc import process_start
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError

log = logging.getLogger(__name__)

LINGER_S = 120.0
"""How long an actor whose worker ended waits for a kernel to collect that end before it exits."""
TAIL_BYTES = 4000
"""How much of the worker's own output (what it printed before it could reach NATS) comes back."""

ActorError = RayActorError
Unavailable = ActorUnavailableError
Died = ActorDiedError


def connect(address: str, namespace: str, runtime_env: dict[str, Any]) -> str:
    """Join the cluster at ``address`` (``"local"``: start one on this machine) once per process; returns
    the address joined. Blocking: call it from a thread."""
    if ray.is_initialized():
        return str(ray.get_runtime_context().gcs_address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "log_to_driver": False,  # the Works' lines come through NATS, as for every executor
        "logging_level": logging.WARNING,
        "runtime_env": runtime_env or None,
    }
    if address == "local":
        ray.init(include_dashboard=False, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    return str(ray.get_runtime_context().gcs_address)


def nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes: ``id``, ``ip``, ``resources`` (totals), ``labels``."""
    return [
        {
            "id": n["NodeID"],
            "ip": n.get("NodeManagerAddress", ""),
            "resources": dict(n.get("Resources") or {}),
            "labels": dict(n.get("Labels") or {}),
        }
        for n in ray.nodes()
        if n.get("Alive")
    ]


def node_death(node_id: str) -> tuple[bool, str]:
    """``(gone, why)`` for a node: gone once the cluster has declared it dead."""
    for n in ray.nodes():
        if n["NodeID"] == node_id:
            why = str(n.get("DeathReasonMessage") or n.get("DeathReason") or "")
            return (not n.get("Alive")), why
    return True, "the cluster no longer knows it"


def available() -> dict[str, float]:
    return {k: float(v) for k, v in ray.available_resources().items()}


def done(ref: Any) -> asyncio.Future[Any]:
    """An asyncio future of an ObjectRef, on the running loop (Ray completes it from its own thread)."""
    return asyncio.wrap_future(ref.future())


class WorkerActor:
    """Hosts one worker process on a Ray node (see the module's docstring)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.folder = ""
        self.log_path = ""
        self.result: dict[str, Any] | None = None
        self._ended = asyncio.Event()
        self._collected = False
        self._reaper: asyncio.Future[None] | None = None

    async def launch(self, spec_json: str, env: dict[str, str], work_dir: str) -> dict[str, Any]:
        import tempfile

        spec = json.loads(spec_json)
        # The worker's spec (0600: it holds the NATS token) and its own output, in a folder of this
        # actor's; the Work's folder is the node's (LK_WORK_DIR there, or work_dir from the kernel).
        self.folder = tempfile.mkdtemp(prefix=f"lk-{spec['work']}-{spec['attempt']}-")
        spec_file = os.path.join(self.folder, "spec.json")
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the NATS token
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(spec))
        self.log_path = os.path.join(self.folder, "worker.log")
        child_env = {**os.environ, **env, "LK_DIE_WITH_PARENT": str(os.getpid())}
        if work_dir:
            child_env["LK_WORK_DIR"] = os.path.expanduser(work_dir)
        root = child_env.get("LK_WORK_DIR") or os.path.join(
            os.path.expanduser("~"), ".lightning-kernel", "works"
        )
        with open(self.log_path, "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lightning_kernel._worker",
                "--spec-file",
                spec_file,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=child_env,
                cwd=self.folder,
                start_new_session=True,
            )
        self._reaper = asyncio.ensure_future(self._reap())
        ctx = ray.get_runtime_context()
        return {
            "pid": self.proc.pid,
            "start": process_start(self.proc.pid),
            "node": ctx.get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "dir": os.path.join(root, spec["work_root"]),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
        }

    async def _reap(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        tail = ""
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            tail = f.read().decode(errors="replace")
        self.result = {
            "code": code if code >= 0 else None,
            "signal": -code if code < 0 else None,
            "tail": tail,
        }
        self._ended.set()
        await asyncio.sleep(LINGER_S)
        if not self._collected:
            log.warning("lightning-kernel: no kernel collected the end of worker %s; exiting", self.folder)
            self._clean()
            os._exit(0)

    def _clean(self) -> None:
        import shutil

        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def wait(self) -> dict[str, Any]:
        await self._ended.wait()
        assert self.result is not None
        return self.result

    async def collected(self) -> None:
        """The kernel has the end: the folder goes (its Paths were persisted), and the actor with it."""
        self._collected = True
        self._clean()

    async def terminate(self, grace: float) -> dict[str, Any]:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._ended.wait(), grace)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        return await self.wait()

    async def ping(self) -> dict[str, Any]:
        proc = self.proc
        return {
            "pid": proc.pid if proc else 0,
            "start": process_start(proc.pid) if proc else "",
            "running": proc is not None and proc.returncode is None,
            "at": time.time(),
        }


_ACTOR: Any = None


def create_actor(name: str, namespace: str, options: dict[str, Any]) -> Any:
    """A new detached actor named ``name`` with ``options`` (resources, label selector, runtime env)."""
    global _ACTOR
    if _ACTOR is None:
        _ACTOR = ray.remote(WorkerActor)
    return _ACTOR.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        max_restarts=0,
        max_task_retries=0,
        max_concurrency=16,
        **options,
    ).remote()


def get_actor(name: str, namespace: str) -> Any | None:
    """The live actor named ``name``, or None. Blocking: call it from a thread."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def kill(actor: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


def actor_id(actor: Any) -> str:
    return str(actor._actor_id.hex())


def get(ref: Any, timeout: float) -> Any:
    """``ray.get`` with a timeout; raises ``TimeoutError``. Blocking: call it from a thread."""
    try:
        return ray.get(ref, timeout=timeout)
    except GetTimeoutError as exc:
        raise TimeoutError(str(exc)) from exc


def shutdown() -> None:
    with contextlib.suppress(Exception):
        ray.shutdown()
