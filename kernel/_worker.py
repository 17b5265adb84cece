"""The worker runtime: hosts one Work, on any machine, for any executor.

An executor only starts, stops and watches the process; everything else is here: connect to NATS,
load the app (its code from the ``code`` artifact, then the pickled app) from the artifact store,
take the Work's run commands from the stream in order, run them, and publish status, state changes
and printed lines, every event stamped with the worker's attempt. Started as
``python -m lightning_kernel._worker`` with the spec as JSON in ``LK_WORKER_SPEC``, or by calling
``main(spec)`` in a fresh process (the local executor's forkserver does that).

A Work is stopped by a ``work.stop_requested`` command (the runtime interrupts ``run()``), or by
SIGTERM (the executor's way, also on kernel shutdown): the call is recorded as ``stopped`` with the
reason, so a resumed run launches it again.

The worker holds a lease on its kernel: the run's lease key (``run.<run id>`` in ``lk_leases``) must be
there, and NATS reachable. When the kernel has been gone for the lease's length, the worker stops its
call, persists its Paths, records why and exits; a call that has not started never starts. A worker
that sees a newer attempt started, or its own attempt fenced by a kernel that could not reach it,
stops at once without persisting anything: its files would overwrite the newer attempt's.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import queue
import signal
import sys
import threading
import traceback
from typing import Any

from lightning_kernel.executors._spec import WorkerSpec

from . import _storage_link as storage_link
from ._coalesce import Coalescer
from ._codec import to_event
from ._endpoint import ListeningWatch, choose
from ._events import (
    PathPersistRequested,
    WorkEndpoint,
    WorkerExited,
    WorkerStarted,
    WorkRecord,
    WorkRunRequested,
    WorkStateChanged,
    WorkStatusChanged,
    WorkStopRequested,
    work_token,
)
from ._process import exit_later, interrupt_main, quiet, tell
from ._records import EventRecord
from ._runtime_io import BusThread
from ._status import WorkStageStatus
from ._tee import LineTee
from ._version import __version__
from ._work import LightningWork, check_returned, unpickle_arg, user_run
from .errors import EventError, KernelFault

KERNEL_LOST = "kernel lost"
"""The reason recorded for a call stopped because the worker's kernel went away."""
FENCED = "fenced"
NATS_REFUSED = "NATS refuses events"
"""The reason of a call stopped because NATS no longer acknowledges the worker's events."""
EXIT_REFUSED = 78
"""Exit code of a worker that cannot run its spec (another lightning-kernel version): EX_CONFIG."""


def host_work_dir() -> str:
    """Where this host keeps the Works' folders: ``LK_WORK_DIR``, else ``~/.lightning-kernel/works``."""
    return os.environ.get("LK_WORK_DIR") or os.path.join(
        os.path.expanduser("~"), ".lightning-kernel", "works"
    )


def resolve_work_root(spec: WorkerSpec) -> str:
    return spec.work_root if os.path.isabs(spec.work_root) else os.path.join(host_work_dir(), spec.work_root)


class _Stop(BaseException):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.io = BusThread(spec.nats_url, spec.nats_token, spec.run_id, spec.work, attempt=spec.attempt)
        self.commands: queue.Queue[EventRecord | None] = queue.Queue()
        self._in_user_code = False
        self._first_call = True
        self.store: Any = None
        self._stop_reason: str | None = None
        self._lock = threading.Lock()
        self.work: LightningWork | None = None
        self._ctx: Any = None
        """The storage context while user code runs (None before its inputs are in place, and after)."""
        self._persisting = threading.Lock()
        """Held while Paths are persisted: a persist request waits for the end-of-call persist."""
        self._gone: str | None = None
        """Why this worker must not start another call: its kernel is gone, or it was fenced."""
        self._fenced = False
        self._refused = ""
        self._coalescer: Coalescer | None = None
        self._changes_call = ""
        """The call whose state changes the coalescer sends (the one running)."""
        if spec.version != __version__:
            self._refused = (
                f"this host runs lightning-kernel {__version__}, the kernel runs {spec.version}: "
                "install the same version on both"
            )

    def load_work(self) -> LightningWork:
        import cloudpickle
        from lightning_kernel.storage._artifacts import ArtifactStore  # type: ignore[import-not-found,unused-ignore]

        from ._code import import_app, unpack

        self.store = ArtifactStore(self.spec.artifacts, backend=self._relay())
        if self.spec.code:
            # The app's own files, so the pickled app's classes (and modules beside it) import by name.
            root = unpack(self.store.get_bytes(self.spec.code), self.spec.code)
            import_app(root, self.spec.module, self.spec.entry, self.spec.argv)
        blob = self.store.get_bytes(self.spec.app)
        obj = cloudpickle.loads(blob)
        # The app, or a Work the flow added while it ran (pickled alone).
        work = obj if isinstance(obj, LightningWork) else obj.components[self.spec.work]
        assert isinstance(work, LightningWork), f"{self.spec.work} is not a LightningWork"
        return work

    def _relay(self) -> Any:
        """The backend of a store reached through the kernel (``lk-relay://``), else None."""
        if not self.spec.artifacts.startswith("lk-relay://"):
            return None
        from lightning_kernel.storage._relay import RelayBackend  # type: ignore[import-not-found,unused-ignore]

        nc = self.io.bus.nc

        def request(subject: str, data: bytes, headers: dict[str, str], timeout: float) -> Any:
            if not nc.is_connected:  # no waiting out a transfer's timeout while the kernel is away
                raise OSError(
                    f"the kernel's artifact relay is unreachable (NATS {nc.connected_url or 'down'})"
                )

            async def ask() -> Any:
                msg = await nc.request(subject, data, timeout=timeout, headers=headers)
                return dict(msg.headers or {}), msg.data

            return self.io.call(ask(), timeout + 5)

        return RelayBackend(self.spec.artifacts, request)

    def serve(self) -> int:
        spec = self.spec
        root = resolve_work_root(spec)
        os.makedirs(root, exist_ok=True)
        os.chdir(root)
        self.spec.work_root = root
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigint)
        if sys.__stderr__ is not None:
            # `kill -USR1` shows where a worker is stuck (an executor does so before it kills one).
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
        sys.stdout = LineTee(lambda line: self.io.log("stdout", line), sys.__stdout__ if spec.echo else None)
        sys.stderr = LineTee(lambda line: self.io.log("stderr", line), sys.__stderr__ if spec.echo else None)
        if spec.preamble:
            print(spec.preamble, end="" if spec.preamble.endswith("\n") else "\n", flush=True)
        if self._refused:
            work = None
        else:
            try:
                work = self.work = self.load_work()
            except BaseException as exc:
                self._refused = f"loading the app failed: {''.join(traceback.format_exception(exc))}"
                work = None
        if work is not None:
            self._serve_endpoint(work)
        self.io.follow(f"lk.{spec.run_id}.cmd.{work_token(spec.work)}", spec.start_seq, self._on_command)
        if spec.kernel:
            self.io.watch_lease(f"run.{spec.run_id}", spec.lease_s, self._kernel_gone)
        self.io.bus.on_give_up.append(self._nats_refuses)
        code = 0
        try:
            while True:
                record = self.commands.get()
                if record is None:  # stopped while idle
                    return self._ended(code)
                try:
                    event = to_event(record)
                except EventError as exc:  # unreadable, or from a newer kernel: said, and skipped
                    tell(f"lightning-kernel worker {spec.work}: skipped command at seq {record.seq}: {exc}")
                    continue
                if not isinstance(event, WorkRunRequested):
                    continue
                if self._gone is not None:
                    return self._ended(code)  # a queued call never starts once the kernel is gone
                if self._refused:
                    self._status(event.call, WorkStageStatus.FAILED, "WorkerRefused", self._refused)
                    code = EXIT_REFUSED
                    return code
                assert work is not None
                if not self._execute(work, event):
                    return self._ended(code)
        except KernelFault as fault:  # NATS stopped taking this worker's events: say it, and go
            tell(f"lightning-kernel worker {spec.work}: {fault}")
            code = 3
            return code
        finally:
            sys.stdout.flush()
            if not self._fenced:
                with contextlib.suppress(KernelFault):
                    self.io.barrier()
            self.io.close()

    def _ended(self, code: int) -> int:
        if self._stop_reason == NATS_REFUSED:
            raise KernelFault(self._gone or NATS_REFUSED)  # exits 3, saying why
        return code

    def _on_command(self, record: EventRecord) -> None:
        # On the bus thread: stop requests and fencing act at once, run requests queue for the main thread.
        if record.type == PathPersistRequested.TYPE:
            # Answered beside run(), which goes on: the consumer waits for these files now.
            request = to_event(record)
            args = (self.io, self.spec.work, self.work, self._ctx, request, self._persisting)
            threading.Thread(target=quiet(storage_link.answer), args=args, daemon=True).start()
        elif record.type == WorkStopRequested.TYPE:
            with self._lock:
                self._stop_reason = to_event(record).reason or "stop requested"  # type: ignore[attr-defined]
            interrupt_main()
        elif record.type in (WorkerStarted.TYPE, WorkerExited.TYPE):
            attempt = record.body.get("attempt", 0)
            mine = self.spec.attempt
            if (record.type == WorkerStarted.TYPE and attempt > mine) or (
                record.type == WorkerExited.TYPE and attempt == mine
            ):
                self._fence(
                    f"attempt {mine} of {self.spec.work} was superseded by the kernel (event {record.seq})"
                )
        else:
            self.commands.put(record)

    def _fence(self, why: str) -> None:
        # Another attempt owns the Work now: stop without persisting or publishing anything more.
        with self._lock:
            if self._gone is not None and self._fenced:
                return
            self._fenced = True
            self._gone = why
            self._stop_reason = FENCED
        self.io.fenced = True
        tell(f"lightning-kernel worker: {why}; stopping")
        interrupt_main()
        exit_later(30.0)

    def _kernel_gone(self, why: str) -> None:
        with self._lock:
            if self._gone is not None:
                return
            self._gone = why
            self._stop_reason = KERNEL_LOST
        tell(f"lightning-kernel worker {self.spec.work}: {why}; stopping")
        interrupt_main()
        # Persisting the Paths may take a while; a worker never outlives its kernel for long.
        exit_later(max(60.0, 6 * self.spec.lease_s))

    def _nats_refuses(self, fault: BaseException) -> None:
        """NATS stopped acknowledging this worker's events (its JetStream full or failing): nothing the
        Work does can be recorded any more, so its call stops now, not at its next change, and the
        worker exits 3 naming the cause (the kernel sees the exit and ends the run)."""
        with self._lock:
            if self._gone is not None:
                return
            self._gone = str(fault)
            self._stop_reason = NATS_REFUSED
        interrupt_main()
        exit_later(60.0)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._interrupt("sigterm")

    def _on_sigint(self, signum: int, frame: Any) -> None:
        with self._lock:
            reason = self._stop_reason or "sigint"
        self._interrupt(reason)

    def _interrupt(self, reason: str) -> None:
        # Only user code is interrupted mid-way; the runtime's own steps (publishing the last status,
        # waiting for acks) finish, and an idle worker just leaves its loop. A call between its
        # command and run() (inputs being copied) does not start run() (``_stopping``).
        with self._lock:
            if self._gone is None:
                self._gone = reason
        if self._in_user_code:
            self._in_user_code = False
            raise _Stop(reason)
        # Not put() here: the signal may have come while this very thread holds the queue's lock.
        threading.Thread(target=quiet(self.commands.put), args=(None,), daemon=True).start()

    def _status(self, call: str, stage: str, reason: str = "", message: str = "") -> None:
        self._flush_changes()
        self.io.emit(
            WorkStatusChanged(work=self.spec.work, call=call, stage=stage, reason=reason, message=message)
        )

    def _serve_endpoint(self, work: LightningWork) -> None:
        """Choose where the Work serves (before its first ``run()``), say it, and say it again once
        a server of it accepts connections."""
        try:
            endpoint = choose(work._lk_host, work._lk_port)
        except OSError as exc:  # a host the Work named that this machine does not have
            tell(f"lightning-kernel worker {self.spec.work}: no port on {work._lk_host!r}: {exc}")
            return
        object.__setattr__(work, "_lk_endpoint", endpoint)
        name = self.spec.work
        self.io.emit(WorkEndpoint(work=name, **endpoint))

        def found() -> None:
            self._flush_changes()
            self.io.emit(WorkEndpoint(work=name, listening=True, **endpoint))

        ListeningWatch(endpoint, lambda: self._in_user_code, found).start()

    def _emit_changes(self, changes: dict[str, Any]) -> None:
        self.io.emit(WorkStateChanged(work=self.spec.work, call=self._changes_call, changes=changes))

    def _flush_changes(self) -> None:
        """Publish the state changes still pending before anything else of the Work goes."""
        if self._coalescer is not None:
            self._coalescer.flush()

    def _execute(self, work: LightningWork, cmd: WorkRunRequested) -> bool:
        """Run one call, inside the Work's storage context; False when the worker must exit."""
        from lightning_kernel.storage._context import StorageContext, latest_record, using

        name = self.spec.work

        def publish(kind: str, body: dict[str, Any]) -> None:
            self._flush_changes()
            self.io.emit(WorkRecord(work=name, kind=kind, data=body))

        def wait_persisted(origin: str, lit_path: str, timeout: float | None) -> dict[str, Any] | None:
            # A running origin persists the files first; then its latest record is read.
            storage_link.ask(self.io, self.spec.run_id, name, origin, lit_path, timeout)
            return latest_record(self.store, self.spec.run_id, origin, lit_path)

        ctx = StorageContext(
            store=self.store,
            run_id=self.spec.run_id,
            work_name=name,
            work_root=self.spec.work_root,
            publish=publish,
            wait_persisted=wait_persisted,
            watch=lambda predicate: storage_link.watch(self.io, predicate),
        )
        with using(ctx):
            return self._execute_in_context(work, cmd, ctx)

    def _execute_in_context(self, work: LightningWork, cmd: WorkRunRequested, ctx: Any) -> bool:
        from lightning_kernel.storage._mount import prepare_mounts  # type: ignore[import-not-found,unused-ignore]
        from lightning_kernel.storage._persist import (
            find_paths,
            persist_paths,
            restore_paths,
            transfer_inputs,
        )

        name = self.spec.work
        limit = self.io.max_payload
        work._lk_set_vars(cmd.vars)
        if self.spec.resume_vars is not None:
            work._lk_set_vars(self.spec.resume_vars)
            self.spec.resume_vars = None
        last = work._lk_vars()

        self._changes_call = cmd.call
        coalescer = self._coalescer
        if coalescer is None:  # one per worker: its sender thread serves every call
            coalescer = self._coalescer = Coalescer(name, self._emit_changes, limit)

        def changed(attr: str, value: Any) -> None:
            # Any assignment sends everything that differs, so in-place edits of other attributes
            # (a list appended to) travel with it; changes made together leave as one delta.
            now = work._lk_vars()
            diff = {k: v for k, v in now.items() if last.get(k, _MISSING) != v}
            if diff:
                # Raised at the assignment that made the state too big, naming the attribute.
                coalescer.add(diff)
                last.update(diff)

        self._status(cmd.call, WorkStageStatus.RUNNING)
        stage, reason, message, keep_going = WorkStageStatus.SUCCEEDED, "", "", True
        object.__setattr__(work, "_lk_on_change", changed)
        object.__setattr__(work, "_lk_in_run", True)
        own = [p for p in find_paths(list(vars(work).values())) if p._origin in (None, name)]
        try:
            get = self.store.get_bytes
            args = [work._lk_revive("", unpickle_arg(a, get)) for a in cmd.args]
            kwargs = {k: work._lk_revive(k, unpickle_arg(v, get)) for k, v in cmd.kwargs.items()}
            if self._first_call:
                # A Work launched again (a resume, a new process) gets its own persisted Paths back.
                self._first_call = False
                restore_paths(own)
            # A Work's Mounts are in place first (a cloud one needs the cloud executor).
            prepare_mounts(work.cloud_compute.mounts, name, self.spec.executor or "local")
            # Paths of other Works, in the arguments or the attributes, arrive before run() starts.
            transfer_inputs(find_paths(args, kwargs, list(vars(work).values())))
            self._in_user_code = True  # first: a signal from now on interrupts, one before is seen here
            if self._gone is not None:
                self._in_user_code = False
                raise _Stop(self._stop_reason or self._gone)
            self._ctx = ctx  # from now on a persist request is answered with the files as they are
            try:
                result = user_run(work)(*args, **kwargs)
            finally:
                self._ctx = None
                self._in_user_code = False
            check_returned(name, result)
        except _Stop as stop:
            stage, reason, keep_going = WorkStageStatus.STOPPED, stop.reason, False
        except BaseException as exc:
            stage, reason = WorkStageStatus.FAILED, type(exc).__name__
            message = "".join(traceback.format_exception(exc))
            sys.stderr.write(message)
        finally:
            object.__setattr__(work, "_lk_on_change", None)
            object.__setattr__(work, "_lk_in_run", False)
        if self._fenced:
            return False  # a newer attempt owns the Work's files and state now
        if reason == KERNEL_LOST:
            message = f"{self._gone}; the call stopped and its Paths were persisted"
        try:
            # Finished, failed or interrupted: the Work's Paths are persisted either way.
            with self._persisting:
                persist_paths([p for p in find_paths(list(vars(work).values())) if p._origin in (None, name)])
        except BaseException as exc:
            if stage == WorkStageStatus.SUCCEEDED:
                stage, reason, message = WorkStageStatus.FAILED, type(exc).__name__, str(exc)
            sys.stderr.write(f"persisting the Paths of {name} failed: {exc}\n")
        try:
            changed("", None)
        except BaseException as exc:  # the final state is not JSON: the call fails, naming the attribute
            stage, reason, message = WorkStageStatus.FAILED, type(exc).__name__, str(exc)
        self._status(cmd.call, stage, reason, message)
        sys.stdout.flush()
        self.io.barrier()
        return keep_going and self._gone is None


_MISSING = object()


def main(spec: WorkerSpec) -> int:
    for k, v in spec.env.items():
        os.environ[k] = v
    return Worker(spec).serve()


def _read_spec(spec_file: str | None) -> WorkerSpec:
    if spec_file is None:
        return WorkerSpec.from_json(os.environ["LK_WORKER_SPEC"])
    try:
        with open(spec_file) as f:
            return WorkerSpec.from_json(f.read())
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spec_file)  # it holds the NATS token: read once, then gone


def _die_with_parent() -> None:
    """With ``LK_DIE_WITH_PARENT`` (its pid), the worker is killed when its parent (a Ray actor) dies: an
    actor killed or gone leaves no worker behind beside the one relaunched elsewhere (Linux only)."""
    parent = os.environ.pop("LK_DIE_WITH_PARENT", "")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if str(os.getppid()) != parent:
        os._exit(EXIT_REFUSED)  # the parent died before the request: nobody hosts this worker


def _main_from_args(argv: list[str]) -> int:
    """``python -m lightning_kernel._worker [--spec-file F]``: the spec from ``F`` (deleted once read)
    or from ``LK_WORKER_SPEC``."""
    import argparse

    _die_with_parent()
    # A parent may have blocked them (a Ray worker's thread does, and exec keeps the mask): the
    # runtime stops a call through SIGINT to its own main thread, and is told to stop by SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    parser = argparse.ArgumentParser(prog="python -m lightning_kernel._worker")
    parser.add_argument("--spec-file")
    args = parser.parse_args(argv)
    try:
        spec = _read_spec(args.spec_file)
    except (KeyError, ValueError, OSError) as exc:
        where = args.spec_file or "LK_WORKER_SPEC"
        print(f"lightning-kernel worker: cannot read its spec ({where}): {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return main(spec)


if __name__ == "__main__":
    raise SystemExit(_main_from_args(sys.argv[1:]))
