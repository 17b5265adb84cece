"""Works on a Ray cluster: a laptop's local one, the Ray cluster launcher's, KubeRay's.

Each worker is a detached, named Ray actor that asks the Work's resources and runs the shared worker
runtime as its child (``_ray``: why an actor and not a task). Its ref is ``{actor, namespace, node, ip,
pid, start, attempt}``: a kernel that restarted finds the actor by name and re-attaches it when its
worker (that pid, that start time) still runs; else the Work is fenced and relaunched.

Placement is Ray's: the Work's ``CloudCompute`` name maps to resources through the machine table
(``_config.MACHINES``, extended in ``[executors.ray.machines]``); ``interruptible=True`` adds a label
selector for the spot nodes (``spot_labels``) when the cluster has any. A Work that no live node could
ever hold fails at once, naming what it asked and what each node has (unless ``autoscaling``: then it
waits for the autoscaler); one that waits for a free node is ``pending`` with why. ``disk_size`` is not
a Ray resource: the Work gets the node's disk; ``shm_size`` (MB) is asked as ``memory``.

A node lost under a Work (a spot reclaim, ``ray stop`` on it, a node removed) ends its worker with
``cause=preempted``: the kernel relaunches it elsewhere (``max_interruptions``) with its last state and
its Paths; an actor lost before its worker started is placed again (``LAUNCH_TRIES``), so a Work
placed on a node that was dying does not fail. What the actor could not be asked any more (its node alive, the actor killed) is ``killed``.

What a node needs of the kernel: NATS, through the address ``nats_url`` names (default: the kernel's
own URL, which only nodes on this machine can use when it is loopback: the first start refuses
otherwise, naming the nodes, and says which NATS address the workers use), and the artifact store: S3
(the kernel's endpoint and credentials travel in the worker's 0600 spec), or the kernel's folder
when every node is on this machine. A cluster beyond this machine with a ``file://`` store is refused
at once: the SSH executor's relay copies files over SFTP, which Ray nodes do not offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import sys
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from lightning_kernel.errors import ConfigError, ExecutorError
from lightning_kernel.executors import Executor, WorkerExit, WorkerHandle, WorkerSpec
from lightning_kernel.executors._echo import KernelNats
from lightning_kernel.executors._spec import CARRIED_ENV

from ._config import Machine, RayConfig, resources_for

log = logging.getLogger(__name__)

PENDING_EVERY_S = 1.0
"""How often a Work waiting for a node says again why it waits."""
LAUNCH_TRIES = 3
"""How many actors a start places when each is lost before its worker runs (its node died as Ray
placed it there, the cluster not yet knowing): an error in the actor itself is not tried again."""


def _adapter() -> Any:
    try:
        from . import _ray
    except ImportError as exc:
        raise ExecutorError(
            f"the ray executor needs Ray, which is not installed ({exc}): pip install 'lightning-kernel[ray]'"
        ) from exc
    return _ray


def _local_addresses() -> set[str]:
    found = {"127.0.0.1", "::1"}
    with contextlib.suppress(Exception):
        import psutil  # Ray's own dependency

        for addrs in psutil.net_if_addrs().values():
            found.update(
                a.address.split("%")[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)
            )
    with contextlib.suppress(OSError):
        found.update(str(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None))
    return found


def _loopback(url: str) -> bool:
    host = urlsplit(url.split(",")[0]).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fits(node: dict[str, Any], asked: dict[str, float], labels: dict[str, str]) -> bool:
    have = node["resources"]
    if any(node["labels"].get(k) != v for k, v in labels.items()):
        return False
    return all(have.get(k, 0.0) + 1e-9 >= v for k, v in asked.items() if v > 0)


def ray_resources(m: Machine) -> dict[str, float]:
    asked = {"CPU": m.num_cpus, "GPU": m.num_gpus, **m.resources}
    if m.memory:
        asked["memory"] = float(m.memory)
    return asked


def _describe(resources: dict[str, float]) -> str:
    shown = []
    for key, value in sorted(resources.items()):
        if key.startswith("node:") or key == "object_store_memory" or value <= 0:
            continue
        shown.append(f"{value / 2**30:.1f} GiB memory" if key == "memory" else f"{value:g} {key}")
    return ", ".join(shown) or "nothing"


class RayHandle(WorkerHandle):
    def __init__(self, executor: RayExecutor, actor: Any, work: str, ref: dict[str, Any]) -> None:
        self.executor = executor
        self.actor = actor
        self.work = work
        self._ref = ref
        self._exit: WorkerExit | None = None
        self.subs: list[Any] = []
        self.idle = False
        """Between calls (its last one ended): its resources may go to a Work that waits."""
        self.reclaimed = False
        self._task = asyncio.ensure_future(self._watch())

    @property
    def ref(self) -> dict[str, Any]:
        return dict(self._ref)

    @property
    def alive(self) -> bool:
        return self._exit is None

    async def _watch(self) -> WorkerExit:
        ray = self.executor.ray
        while True:
            try:
                result = await ray.done(self.actor.wait.remote())
                break
            except ray.Unavailable:
                await asyncio.sleep(0.5)  # its node may come back, or be declared dead
            except ray.ActorError as exc:
                node = str(self._ref.get("node", ""))
                gone, why = await asyncio.to_thread(ray.node_death, node)
                where = f"its Ray node {self._ref.get('ip', '?')} ({node[:12]})"
                if gone or getattr(exc, "preempted", False):
                    self._exit = WorkerExit(
                        None, cause="preempted", message=f"{where} was lost: {why or 'gone'}"
                    )
                else:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    self._exit = WorkerExit(
                        None, cause="killed", message=f"its Ray actor on {where} died: {first}"
                    )
                self._finish()
                return self._exit
        code, sig = result.get("code"), result.get("signal")
        message = ""
        if code not in (0, None) and result.get("tail"):
            lines = [line for line in str(result["tail"]).splitlines() if line.strip()][-8:]
            message = f"the worker process exited with code {code}; its last output:\n" + "\n".join(lines)
        self._exit = WorkerExit(code, sig, message=message)
        self._finish()
        return self._exit

    def _finish(self) -> None:
        self.executor._ended(self)
        task = asyncio.ensure_future(self._release())
        self.executor._tasks.add(task)
        task.add_done_callback(self.executor._tasks.discard)

    async def _release(self) -> None:
        ray = self.executor.ray
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ray.done(self.actor.collected.remote()), 10)
        await asyncio.to_thread(ray.kill, self.actor)

    async def wait(self) -> WorkerExit:
        return await asyncio.shield(self._task)

    async def terminate(self, grace: float = 5.0) -> None:
        if self._exit is None:
            ray = self.executor.ray
            try:
                await asyncio.wait_for(ray.done(self.actor.terminate.remote(grace)), grace + 10)
            except Exception as exc:  # it does not answer: Ray kills it, its worker dies with it
                log.info("%s: terminating its Ray actor failed (%s); killing it", self.work, exc)
                await asyncio.to_thread(ray.kill, self.actor)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.wait(), grace + 30)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, config: RayConfig, warm: bool = False) -> None:
        self.config = config
        self.max_interruptions = config.max_interruptions
        self.warm = warm
        self.ray: Any = None
        self.address = ""
        self._connecting: asyncio.Future[None] | None = None
        self._remote: list[str] = []
        """The IPs of the cluster's nodes that are not this machine's."""
        self._said_nats = ""
        self._kernel = KernelNats("lk-ray-executor")
        self._handles: set[RayHandle] = set()
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- the cluster -----------------------------------------------------------------------------------

    async def _connected(self) -> None:
        if self._connecting is None or (self._connecting.done() and self._connecting.exception()):
            self._connecting = asyncio.ensure_future(self._connect())
        await asyncio.shield(self._connecting)

    async def _connect(self) -> None:
        ray = _adapter()
        try:
            self.address = await asyncio.to_thread(
                ray.connect, self.config.address, self.config.namespace, self.config.runtime_env
            )
        except Exception as exc:
            hint = ""
            if self.config.address == "auto":
                hint = (
                    ": start one with `ray start --head`, set RAY_ADDRESS or address in [executors.ray], "
                    'or address = "local" to let the kernel start one on this machine'
                )
            raise ExecutorError(
                f"cannot join the Ray cluster at {self.config.address!r}: {exc}{hint}"
            ) from exc
        self.ray = ray
        nodes = await asyncio.to_thread(ray.nodes)
        mine = _local_addresses()
        self._remote = sorted({n["ip"] for n in nodes if n["ip"] and n["ip"] not in mine})

    def _nats_for(self, spec: WorkerSpec) -> str:
        url = self.config.nats_url or spec.nats_url
        if self._remote and _loopback(url):
            raise ExecutorError(
                f"the Ray cluster at {self.address} has nodes on other machines ({', '.join(self._remote[:5])}), "
                f"which cannot reach this kernel's NATS at {url} (loopback): set nats_url in [executors.ray] "
                "to an address they reach, with the kernel's NATS listening there (LK_NATS_LISTEN=0.0.0.0:4222 "
                "for the embedded one, or --nats nats://HOST:4222 with LK_NATS_TOKEN)"
            )
        if url != self._said_nats:
            self._said_nats = url
            print(
                f"ray: Works run on the Ray cluster at {self.address}; they reach NATS at {url}",
                file=sys.stderr,
                flush=True,
            )
        return url

    def _store_for(self, spec: WorkerSpec) -> tuple[str, dict[str, str]]:
        scheme = urlsplit(spec.artifacts).scheme
        if scheme in ("", "file"):
            if self._remote:
                raise ExecutorError(
                    f"the Ray cluster at {self.address} has nodes on other machines "
                    f"({', '.join(self._remote[:5])}), which cannot read this kernel's artifact store "
                    f"{spec.artifacts}: use an object store they reach, --artifacts s3://BUCKET/PREFIX (LK_ARTIFACTS)"
                )
            return spec.artifacts, {}
        return spec.artifacts, {
            k: os.environ[k] for k in CARRIED_ENV if k in os.environ and k not in spec.env
        }

    async def _placeable(self, work: str, asked: dict[str, float], labels: dict[str, str]) -> None:
        """Refuse at once a Work that no live node could ever hold (with an autoscaler: say it waits)."""
        nodes = await asyncio.to_thread(self.ray.nodes)
        if any(fits(n, asked, labels) for n in nodes):
            return
        what = _describe(asked) + (f" on a node labelled {labels}" if labels else "")
        have = "; ".join(f"{n['ip']} ({_describe(n['resources'])})" for n in nodes) or "no live node"
        if self.config.autoscaling:
            self.pending(f"waiting for the autoscaler to add a Ray node with {what}; the nodes now: {have}")
            return
        raise ExecutorError(
            f"{work} asks for {what}, which no node of the Ray cluster at {self.address} can hold: {have} "
            "(change its CloudCompute, or [executors.ray.machines], or add such a node; autoscaling = true "
            "to wait for one)"
        )

    async def _why_waiting(self, asked: dict[str, float]) -> str:
        free = await asyncio.to_thread(self.ray.available)
        short = {k: v for k, v in asked.items() if v > 0 and free.get(k, 0.0) + 1e-9 < v}
        if not short:
            return f"waiting for Ray to place its actor ({_describe(asked)})"
        return f"waiting for a Ray node with {_describe(asked)} free; the cluster has {_describe(free)} free"

    # -- the executor API ------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Join the cluster in the background when it is configured, so that the first Work does not
        wait for it; a failure says so when a Work needs the cluster."""
        if self.warm:
            task = asyncio.ensure_future(self._connected())
            self._tasks.add(task)
            task.add_done_callback(self._warmed)

    def _warmed(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("ray: not joined at start (a Work that needs it will say why): %s", task.exception())

    async def start(self, spec: WorkerSpec) -> RayHandle:
        await self._connected()
        ray = self.ray
        try:
            machine = resources_for(self.config, spec.compute)
        except ConfigError as exc:
            raise ExecutorError(str(exc)) from exc
        asked = ray_resources(machine)
        labels: dict[str, str] = {}
        if spec.compute.get("interruptible") and self.config.spot_labels:
            nodes = await asyncio.to_thread(ray.nodes)
            if any(all(n["labels"].get(k) == v for k, v in self.config.spot_labels.items()) for n in nodes):
                labels = dict(self.config.spot_labels)
        await self._placeable(spec.work, asked, labels)
        artifacts, carried = self._store_for(spec)
        remote = replace(
            spec,
            nats_url=self._nats_for(spec),
            artifacts=artifacts,
            env={**carried, **spec.env},
            echo=False,
        )
        options: dict[str, Any] = {
            "num_cpus": machine.num_cpus,
            "num_gpus": machine.num_gpus,
            "resources": dict(machine.resources),
        }
        if machine.memory:
            options["memory"] = machine.memory
        if labels:
            options["label_selector"] = labels
        for tried in range(1, LAUNCH_TRIES + 1):
            name = f"lk.{spec.run_id}.{spec.work}.{spec.attempt}" + (f".{tried}" if tried > 1 else "")
            try:
                actor, info = await self._launch(name, options, remote, asked)
                break
            except ray.ActorError as exc:
                lost = not getattr(exc, "actor_init_failed", False)
                if not lost or tried == LAUNCH_TRIES:
                    raise ExecutorError(
                        f"the Ray actor for {spec.work} could not start its worker"
                        + (f" ({tried} tries)" if tried > 1 else "")
                        + f": {exc}"
                    ) from exc
                self.pending(
                    f"the Ray actor for {spec.work} was lost before its worker started; placing it again"
                )
                log.info("ray: actor %s lost while starting (try %d): %s", name, tried, exc)
        ref = {
            "actor": name,
            "namespace": self.config.namespace,
            "actor_id": ray.actor_id(actor),
            "attempt": spec.attempt,
            **info,
        }
        return await self._adopt(actor, spec.work, ref, spec)

    async def _launch(
        self, name: str, options: dict[str, Any], remote: WorkerSpec, asked: dict[str, float]
    ) -> tuple[Any, dict[str, Any]]:
        """Create the actor and start its worker; says why while Ray has not placed it. An actor that
        did not launch is killed (its resources go back)."""
        ray = self.ray
        actor = await asyncio.to_thread(ray.create_actor, name, self.config.namespace, options)
        launched = False
        try:
            call = ray.done(actor.launch.remote(remote.to_json(), {}, self.config.work_dir))
            call.add_done_callback(lambda f: f.cancelled() or f.exception())
            said = ""
            while True:
                finished, _ = await asyncio.wait({call}, timeout=PENDING_EVERY_S)
                if finished:
                    break
                why = await self._why_waiting(asked)
                if why != said:
                    self.pending(why)
                    said = why
                self._reclaim(remote.run_id)
            info: dict[str, Any] = call.result()
            launched = True
            return actor, info
        finally:
            if not launched:
                await asyncio.to_thread(ray.kill, actor)

    async def _adopt(self, actor: Any, work: str, ref: dict[str, Any], spec: WorkerSpec | None) -> RayHandle:
        handle = RayHandle(self, actor, work, ref)
        self._handles.add(handle)
        if spec is not None:

            def on_change(idle: bool) -> None:
                handle.idle = idle

            with contextlib.suppress(Exception):
                if spec.echo:
                    handle.subs.append(await self._kernel.echo(spec))
                handle.subs.append(await self._kernel.idle_watch(spec, spec.attempt, on_change))
        return handle

    def _reclaim(self, run_id: str) -> None:
        """A Work waits for resources: stop one idle worker of the run (its last call ended and
        persisted its Paths), as the SSH executor does; its own next call starts a new worker.
        Ray, not this executor, knows which node frees what: one at a time, until the Work is placed."""
        if any(h.reclaimed and h.alive for h in self._handles):
            return
        for h in self._handles:
            if h.idle and h.alive and not h.reclaimed and f".{run_id}." in str(h.ref.get("actor", "")):
                h.reclaimed = True
                log.info("ray: stopping idle worker %s so that a waiting Work gets its resources", h.work)
                task = asyncio.ensure_future(h.terminate())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return

    def _ended(self, handle: RayHandle) -> None:
        self._handles.discard(handle)
        for sub in handle.subs:
            task = asyncio.ensure_future(sub.unsubscribe())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        handle.subs = []

    async def attach(self, ref: dict[str, Any]) -> WorkerHandle | None:
        name, pid, start = ref.get("actor"), ref.get("pid"), ref.get("start")
        if not isinstance(name, str) or not isinstance(pid, int) or not start:
            return None
        await self._connected()
        ray = self.ray
        actor = await asyncio.to_thread(
            ray.get_actor, name, str(ref.get("namespace") or self.config.namespace)
        )
        if actor is None:
            return None
        try:
            seen = await asyncio.wait_for(ray.done(actor.ping.remote()), 15)
        except Exception as exc:
            log.info("re-attaching Ray actor %s: %s", name, exc)
            seen = {}
        if not seen.get("running") or seen.get("pid") != pid or seen.get("start") != start:
            await asyncio.to_thread(ray.kill, actor)
            return None
        spec = self.attaching()
        return await self._adopt(actor, spec.work if spec else "", dict(ref), spec)

    async def close(self) -> None:
        # Actors being released give back their CPUs: let them finish (a warm-up still joining goes).
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=15)
        for task in list(self._tasks):
            task.cancel()
        await self._kernel.close()
