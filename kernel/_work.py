"""LightningWork: a long-running job that the flow starts with ``run()``.

``run`` is wrapped once per class (``__init_subclass__``). Where the call goes depends on where the
Work lives: outside any app it runs in the process, honouring ``cache_calls``; under the flow loop,
the loop's dispatcher turns the call into a ``work.run_requested`` event; inside a worker the
runtime calls the user's function directly.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from ._build_config import BuildConfig
from ._component import Component
from ._compute import CloudCompute
from ._status import FINISHED_STAGES, WorkStageStatus, WorkStatus
from .errors import WorkRunError


class Dispatcher(Protocol):
    """Where a Work's ``run()`` calls go once the Work is part of a running app."""

    def call(self, work: LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None: ...

    def stop(self, work: LightningWork) -> None: ...


def user_run(work: LightningWork) -> Callable[..., Any]:
    """The user's own ``run`` of ``work``, bound, without the dispatching wrapper."""
    fn = type(work).run
    return functools.partial(getattr(fn, "__lk_user_run__", fn), work)


PICKLED = "__pickled__"
"""The ``type`` of the JSON form of a ``run()`` argument that is not JSON: pickled into the store."""


def encode_args(
    work: str, args: tuple[Any, ...], kwargs: dict[str, Any], blobs: dict[str, bytes] | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """Arguments as JSON values: Paths and Payloads by their JSON form, JSON values as they are, and
    anything else (bytes, objects) pickled, as Lightning App does, by its content's ref: the pickle
    goes into ``blobs`` for the artifact store, and equal values make the same call (``cache_calls``).
    An argument that cannot be pickled is an error that names it."""

    def enc(where: str, value: Any) -> Any:
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict) and getattr(value, "__lk_state_value__", False):
            return to_dict()
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            return _pickled(work, where, value, blobs)

    return [enc(f"#{i}", a) for i, a in enumerate(args)], {k: enc(repr(k), v) for k, v in kwargs.items()}


def _pickled(work: str, where: str, value: Any, blobs: dict[str, bytes] | None) -> dict[str, Any]:
    import cloudpickle

    try:
        data = bytes(cloudpickle.dumps(value))
    except Exception as exc:
        raise WorkRunError(
            f"{work}.run(): argument {where} of type {type(value).__name__} is neither JSON nor picklable "
            f"({type(exc).__name__}: {exc}); pass JSON values, Paths, a Payload, or a picklable object"
        ) from None
    ref = hashlib.sha256(data).hexdigest()
    if blobs is not None:
        blobs[ref] = data
    return {"type": PICKLED, "ref": ref, "size": len(data), "class": type(value).__qualname__}


def is_pickled(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == PICKLED and isinstance(value.get("ref"), str)


def unpickle_arg(value: Any, get_bytes: Callable[[str], bytes]) -> Any:
    """The object behind a pickled argument's JSON form (read from the kernel's own artifact store,
    whose refs are checked against their content); other values unchanged."""
    if not is_pickled(value):
        return value
    import cloudpickle

    return cloudpickle.loads(get_bytes(value["ref"]))


def revive(value: Any) -> Any:
    """The object behind the JSON form of a Path, Payload or Drive; other values unchanged."""
    from lightning_kernel.storage import Drive, Path, Payload
    from lightning_kernel.storage._drive import is_drive_dict
    from lightning_kernel.storage._path import is_path_dict
    from lightning_kernel.storage._payload import is_payload_dict

    if is_path_dict(value):
        return Path.from_dict(value)
    if is_payload_dict(value):
        return Payload.from_dict(value)
    if is_drive_dict(value):
        return Drive.from_dict(value)
    return value


def call_hash(args: list[Any], kwargs: dict[str, Any]) -> str:
    blob = json.dumps({"args": args, "kwargs": kwargs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def check_returned(work: str, value: Any) -> None:
    """A value ``run()`` returned is dropped, as Lightning App drops it (the flow's ``work.run()``
    returns None); the Work's log says so, once per call, since it is seldom what was meant."""
    if value is not None:
        import sys

        print(
            f"lightning-kernel: {work}.run() returned a {type(value).__name__}, which is dropped (the "
            "flow's work.run() returns None): store results in public attributes, or hand objects to "
            "other Works with lightning_kernel.Payload",
            file=sys.stderr,
        )


class LightningWork(Component):
    """A long-running job hosted by an executor (a local process by default)."""

    def __init__(
        self,
        parallel: bool = False,
        cache_calls: bool = True,
        raise_exception: bool = True,
        cloud_compute: CloudCompute | None = None,
        start_with_flow: bool = True,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - {"host", "port", "local_build_config", "cloud_build_config", "run_once"}
        if unknown:
            raise TypeError(f"LightningWork got unexpected arguments {sorted(unknown)}")
        if "run_once" in kwargs and kwargs["run_once"] is not None:
            cache_calls = bool(kwargs["run_once"])
        self._parallel = bool(parallel)
        self._cache_calls = bool(cache_calls)
        self._raise_exception = bool(raise_exception)
        self._cloud_compute = cloud_compute or CloudCompute()
        self._start_with_flow = bool(start_with_flow)
        self._lk_status: dict[str, Any] = {}
        self._lk_calls: dict[str, dict[str, Any]] = {}
        self._lk_dispatcher: Dispatcher | None = None
        self._lk_local_done: set[str] = set()
        self._lk_host = str(kwargs.get("host") or "127.0.0.1")
        port = kwargs.get("port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise TypeError(f"LightningWork(port=...) must be a port number (1-65535), got {port!r}")
        self._lk_port: int | None = port
        self._lk_endpoint: dict[str, Any] = {}
        self._lk_display = ""
        self._lk_build: dict[str, Any] = {}
        for key in ("local_build_config", "cloud_build_config"):
            config = kwargs.get(key)
            if config is None:
                continue
            if not isinstance(config, BuildConfig):
                raise TypeError(f"LightningWork({key}=...) must be a BuildConfig, got {config!r}")
            config.on_work_init(self, self._cloud_compute)
            self._lk_build[key] = config

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("run")
        if fn is None or hasattr(fn, "__lk_user_run__"):
            return

        @functools.wraps(fn)
        def run(self: LightningWork, *args: Any, **kw: Any) -> None:
            if getattr(self, "_lk_in_run", False):
                # super().run() from a subclass's run: call through.
                return fn(self, *args, **kw)
            dispatcher = self._lk_dispatcher
            if dispatcher is not None:
                dispatcher.call(self, args, kw)
                return None
            return self._run_in_process(fn, args, kw)

        run.__lk_user_run__ = fn  # type: ignore[attr-defined]
        cls.run = run  # type: ignore[method-assign]

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Override: the Work's job. Returns None; results go in public attributes."""

    def _lk_convert(self, name: str, value: Any) -> Any:
        # A `lit://` string becomes a Path that knows this Work is its origin.
        if isinstance(value, str) and value.startswith("lit://"):
            from lightning_kernel.storage import Path

            return Path(value, origin=self._lk_name or None)
        return value

    def _lk_revive(self, name: str, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return revive(value)
        return value

    def _run_in_process(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Outside any app (`python example.py`): run here, honouring cache_calls as the seed shows.
        jargs, jkwargs = encode_args(self._display_name(), args, kwargs)
        key = call_hash(jargs, jkwargs)
        if self._cache_calls and key in self._lk_local_done:
            return
        self._set_local_status(WorkStageStatus.RUNNING)
        object.__setattr__(self, "_lk_in_run", True)
        try:
            check_returned(self._display_name(), fn(self, *args, **kwargs))
        except BaseException as exc:
            self._set_local_status(WorkStageStatus.FAILED, message=str(exc))
            raise
        finally:
            object.__setattr__(self, "_lk_in_run", False)
        self._lk_local_done.add(key)
        self._set_local_status(WorkStageStatus.SUCCEEDED)

    def _set_local_status(self, stage: str, message: str = "") -> None:
        import time

        self._lk_status = {"stage": stage, "timestamp": time.time(), "reason": "", "message": message}

    def stop(self) -> None:
        """Stop the Work's process; its status becomes ``stopped``."""
        if self._lk_dispatcher is not None:
            self._lk_dispatcher.stop(self)
        elif self._lk_status.get("stage") not in FINISHED_STAGES | {None}:
            self._set_local_status(WorkStageStatus.STOPPED)

    # -- configuration (read-only, not state) -------------------------------------------------------

    @property
    def parallel(self) -> bool:
        return self._parallel

    @property
    def cache_calls(self) -> bool:
        return self._cache_calls

    @property
    def raise_exception(self) -> bool:
        return self._raise_exception

    @property
    def cloud_compute(self) -> CloudCompute:
        return self._cloud_compute

    @property
    def start_with_flow(self) -> bool:
        return self._start_with_flow

    @property
    def cloud_build_config(self) -> BuildConfig:
        """Lightning App's: how its cloud built the Work's environment (kept, not acted on: ``_build_config``)."""
        return self._lk_build.get("cloud_build_config") or BuildConfig()

    @property
    def local_build_config(self) -> BuildConfig:
        return self._lk_build.get("local_build_config") or BuildConfig()

    # -- where the Work serves (set by its worker before run(); the flow sees it from the log) ------

    @property
    def host(self) -> str:
        """The address a server in ``run()`` binds: ``127.0.0.1`` unless ``LightningWork(host=...)``."""
        return str(self._lk_endpoint.get("host") or self._lk_host)

    @property
    def port(self) -> int | None:
        """The port a server in ``run()`` listens on: free on the Work's machine, chosen by its worker
        before ``run()`` (or ``LightningWork(port=...)``); None until the worker started."""
        port = self._lk_endpoint.get("port")
        return int(port) if port else self._lk_port

    @property
    def internal_ip(self) -> str:
        """The address other Works reach this one at; "" until its worker started."""
        return str(self._lk_endpoint.get("internal_ip", ""))

    @property
    def url(self) -> str:
        """``http://<internal_ip>:<port>``, where the flow, other Works and a browser reach a server
        the Work runs; "" until its worker started."""
        return str(self._lk_endpoint.get("url", ""))

    @property
    def display_name(self) -> str:
        """The Work's name as the UI shows it (its name in the tree unless set)."""
        return self._lk_display or self._lk_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._lk_display = str(value)

    def _lk_spec(self) -> dict[str, Any]:
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "parallel": self._parallel,
            "cache_calls": self._cache_calls,
            "raise_exception": self._raise_exception,
            "start_with_flow": self._start_with_flow,
            "cloud_compute": self._cloud_compute.to_dict(),
            **({"display_name": self._lk_display} if self._lk_display else {}),
        }

    # -- status -------------------------------------------------------------------------------------

    @property
    def status(self) -> WorkStatus:
        return WorkStatus.from_dict(self._lk_status)

    @property
    def has_started(self) -> bool:
        return self.status.stage != WorkStageStatus.NOT_STARTED

    @property
    def is_pending(self) -> bool:
        return self.status.stage == WorkStageStatus.PENDING

    @property
    def is_running(self) -> bool:
        return self.status.stage == WorkStageStatus.RUNNING

    @property
    def has_succeeded(self) -> bool:
        return self.status.stage == WorkStageStatus.SUCCEEDED

    @property
    def has_failed(self) -> bool:
        return self.status.stage == WorkStageStatus.FAILED

    @property
    def has_stopped(self) -> bool:
        return self.status.stage == WorkStageStatus.STOPPED

    @property
    def state(self) -> dict[str, Any]:
        return {"vars": self._lk_vars()}
