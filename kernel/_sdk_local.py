"""The SDK's local mode: a data dir's SQL store, and kernels started in detached processes.

Reads go to the store (opened lazily, never created). ``submit`` and ``resume`` need a kernel: the
client starts one as ``run app`` and ``resume`` would, in a process of its own
(``python -m lightning_kernel._sdk_local``, a new session, so that the run outlives the caller and a
Ctrl-C in the caller's terminal does not reach it). The process says on its stdout, in one JSON line,
the run it drives once the run is recorded, or why it could not start; what it prints afterwards goes
to ``<data dir>/detached/<run>.log``. ``stop`` is ``lightning-kernel stop``'s (``_embedded.stop_run``).

Following a run (``events``, ``logs`` with ``follow``) polls the store, a few ms apart at first and
up to a quarter of a second once the run is quiet. Tried and left: following the kernel's NATS (an
event is published before it is recorded, so the follower would hand out events that ``history``
does not have yet, and a kernel of another machine, or none, may be driving the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ._config import Config
from ._projection import RUN_ENDED, component_tree
from ._records import EventRecord, LogLine, RunInfo
from ._sdk import RunState, app_file_of
from ._store import EventStore
from .errors import KernelError

START_S = 120.0
"""How long a detached kernel may take to start and record its run before the client gives up."""
LOCK_WAIT_S = 10.0
"""How long a detached kernel waits for the data dir's lock (a kernel finishing its run holds it)."""
FIRST_TICK_S = 0.01
LAST_TICK_S = 0.25
LOGS_QUIET_S = 0.3
"""After the run's end, lines still come while the recorder catches up: logs end after this lull."""


class LocalBackend:
    def __init__(self, config: Config, param_names: dict[str, str] | None = None) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.param_names = param_names or {"at": "at"}
        self._store: EventStore | None = None

    def store(self) -> EventStore:
        if self._store is None:
            from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

            self._store = open_store(self.config.db_url, create=False)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- reads --------------------------------------------------------------------------------------

    def runs(self, limit: int) -> list[RunInfo]:
        return self.store().runs(limit=limit)

    def run(self, run_id: str) -> RunInfo:
        return self.store().run(run_id)

    def state(self, run_id: str, at: int | None) -> RunState:
        from ._views import run_state

        state = run_state(self.store(), run_id, at, self.param_names["at"])
        return RunState(state["run"], component_tree(state), state["works"])

    def history(self, run_id: str, after: int, limit: int | None) -> list[EventRecord]:
        return self.store().events(run_id, after_seq=after, limit=limit)

    def events(self, run_id: str, after: int, follow: bool) -> Iterator[EventRecord]:
        store = self.store()
        tick = FIRST_TICK_S
        while True:
            # The status first: a run read as ended has all its events recorded (the same transaction).
            status = store.run(run_id).status
            batch = store.events(run_id, after_seq=after, limit=1000)
            yield from batch
            if batch:
                after, tick = batch[-1].seq, FIRST_TICK_S
                continue
            if not follow or status in RUN_ENDED:
                return
            time.sleep(tick)
            tick = min(tick * 2, LAST_TICK_S)

    def logs(self, run_id: str, component: str | None, after: int, follow: bool) -> Iterator[LogLine]:
        from ._views import check_component

        store = self.store()
        if component is not None:
            check_component(store, store.run(run_id), component)
        return self._logs(store, run_id, component, after, follow)

    def _logs(
        self, store: EventStore, run_id: str, component: str | None, after: int, follow: bool
    ) -> Iterator[LogLine]:
        tick = FIRST_TICK_S
        quiet_since: float | None = None
        while True:
            status = store.run(run_id).status
            batch = store.logs(run_id, component=component, after_seq=after, limit=1000)
            yield from batch
            if batch:
                after, tick, quiet_since = batch[-1].seq, FIRST_TICK_S, None
                continue
            if not follow:
                return
            if status in RUN_ENDED:
                now = time.monotonic()
                quiet_since = quiet_since or now
                if now - quiet_since >= LOGS_QUIET_S or not _kernel_alive(self.config):
                    return
            time.sleep(tick)
            tick = min(tick * 2, LAST_TICK_S)

    # -- a kernel's work ----------------------------------------------------------------------------

    def submit(self, app: Any, name: str | None, argv: list[str], env: dict[str, str]) -> RunInfo:
        if isinstance(app, str):
            how = {"LK_APP_ARGV": json.dumps(argv), "LK_APP_ENV": json.dumps(env)}
            return self.run(_detached(self.config, ["file", os.path.abspath(app), name or ""], extra_env=how))
        import cloudpickle

        app_file = app_file_of(app)
        return self.run(_detached(self.config, ["pickle", app_file, name or ""], cloudpickle.dumps(app)))

    def resume(self, run_id: str) -> RunInfo:
        return self.run(_detached(self.config, ["resume", run_id, ""]))

    def stop(self, run_id: str, wait: float) -> RunInfo:
        from ._embedded import stop_run

        deadline = time.monotonic() + wait
        stop_run(self.config, run_id, wait)
        # stop_run saw the end on NATS; the store has it once the recorder committed it.
        tick = FIRST_TICK_S
        info = self.run(run_id)
        while info.status not in RUN_ENDED and time.monotonic() < deadline:
            time.sleep(tick)
            tick = min(tick * 2, LAST_TICK_S)
            info = self.run(run_id)
        return info

    # -- replay, diff and fork ----------------------------------------------------------------------

    def replay(self, run_id: str, app: str | None, until: int | None) -> dict[str, Any]:
        from ._replay import load_run_app, replay_history

        records = self.store().events(run_id)
        result = replay_history(load_run_app(self.config, records, app), records, until=until)
        return dict(result.to_json())

    def diff(
        self, run_id: str, other: str | None, from_seq: int | None, to_seq: int | None
    ) -> dict[str, Any]:
        from ._diff import diff_runs

        return dict(diff_runs(self.store(), run_id, other, from_seq, to_seq))

    def fork(self, run_id: str, at: int, app: str | None) -> str:
        argv = ["fork", run_id, str(at), os.path.abspath(app) if app else ""]
        return _detached(self.config, argv)


def _kernel_alive(config: Config) -> bool:
    from ._embedded import _live_kernel

    return _live_kernel(config) is not None


# -- the detached kernel -----------------------------------------------------------------------------

_ENV = {
    "LK_DATA_DIR": "data_dir",
    "LK_DB": "db",
    "LK_NATS": "nats",
    "LK_NATS_TOKEN": "nats_token",
    "LK_ARTIFACTS": "artifacts",
    "LK_S3_ENDPOINT_URL": "s3_endpoint",
    "LK_EXECUTOR": "executor",
    "LK_CONFIG": "config_file",
}


def _detached(
    config: Config, argv: list[str], stdin: bytes | None = None, extra_env: dict[str, str] | None = None
) -> str:
    """Start a kernel process for ``argv`` (``file PATH NAME``, ``pickle APP_FILE NAME``, ``resume RUN
    ""``, ``fork RUN AT APP_FILE``); the id of the run it drives, once recorded. Raises what kept it
    from starting."""
    env = {**os.environ, **(extra_env or {})}
    for var, attr in _ENV.items():
        value = getattr(config, attr)
        if value:
            env[var] = str(value)
        else:
            env.pop(var, None)
    # The caller's imports are the app's: the kernel (and its workers) find what the caller found
    # (the folders it added; the interpreter's own it finds anyway).
    own = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    added = [p for p in sys.path if p and not p.startswith(own)]
    env["PYTHONPATH"] = os.pathsep.join(added + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    folder = os.path.join(config.data_dir, "detached")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    log_path = os.path.join(folder, f"starting-{uuid.uuid4().hex[:12]}.log")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lightning_kernel._sdk_local", *argv, log_path],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_fd,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    assert proc.stdout is not None
    if stdin is not None:
        assert proc.stdin is not None
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_S)
    proc.stdout.close()
    if not answer or not answer[0]:
        if not answer:
            proc.kill()
        code = proc.wait()
        raise KernelError(
            f"the kernel process for {' '.join(argv[:2])} exited ({code}) before it said which run it "
            f"drives; what it printed: {_tail(log_path)}"
        )
    reply = json.loads(answer[0])
    if "error" in reply:
        proc.wait()
        raise _error(reply)
    return str(reply["run"])


def _feed(pipe: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):
        pipe.write(data)
        pipe.close()


def _tail(path: str, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            return f.read().decode(errors="replace").strip() or "nothing"
    except OSError:
        return "nothing"


_MESSAGE_ONLY = ("AppLoadError", "ArtifactError", "ConfigError", "ExecutorError", "ForkError", "StoreError")
"""The errors a detached kernel reports by kind: those made of their message alone."""


def _error(reply: dict[str, Any]) -> KernelError:
    from . import errors

    kind = str(reply.get("kind"))
    cls = getattr(errors, kind, KernelError) if kind in _MESSAGE_ONLY else KernelError
    error: KernelError = cls(str(reply["error"]))
    return error


def _wait_for_lock(config: Config) -> None:
    """Wait (``LOCK_WAIT_S`` at most) for a kernel that finishes in the data dir to let go of it."""
    if config.nats is not None:
        return
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(config.data_dir, "kernel.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the kernel's own lock says who holds it
                time.sleep(0.05)
    finally:
        os.close(fd)


def _name_log(path: str, run_id: str) -> None:
    """``<run>.log``, or ``<run>.<n>.log`` for a later kernel of the run (a resume): each keeps its own."""
    folder = os.path.dirname(path)
    for n in range(1000):
        target = os.path.join(folder, f"{run_id}.log" if n == 0 else f"{run_id}.{n}.log")
        if not os.path.exists(target):
            with contextlib.suppress(OSError):
                os.rename(path, target)
            return


def main(argv: list[str]) -> int:
    """The detached kernel: ``MODE ARG NAME LOG_PATH``, or ``fork RUN AT APP_FILE LOG_PATH``."""
    mode, arg, name, log_path = argv[0], argv[1], argv[-2], argv[-1]
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # from now on, what the kernel and the flow print goes to the log
    told = False

    def tell(**reply: Any) -> None:
        nonlocal told
        if not told:
            told = True
            report.write(json.dumps(reply) + "\n")
            report.close()

    try:
        from ._datadir import early_start
        from ._embedded import _host
        from ._kernel import Kernel
        from ._loop import RunDriver

        config = Config.from_env()
        config.echo = False
        _wait_for_lock(config)
        kernel = Kernel(config, early_start(config))

        async def make() -> RunDriver:
            if mode == "resume":
                await kernel.started()
                driver = await kernel.resume_run(arg)  # refuses a run that ended, or is held elsewhere
            elif mode == "fork":
                await kernel.started()
                driver = await kernel.fork_run(arg, int(argv[2]), name or None)
            elif mode == "file":
                from ._app import load_app

                app_argv = json.loads(os.environ.pop("LK_APP_ARGV", "[]"))
                app_env = json.loads(os.environ.pop("LK_APP_ENV", "{}"))
                os.environ.update(app_env)  # the flow sees them as the Works do
                app, module = load_app(arg, app_argv)
                code = await kernel.pack_code(arg, module)
                await kernel.started()
                driver = await kernel.create_run(
                    app, arg, name or None, code=code, argv=app_argv, env=app_env
                )
            else:
                import cloudpickle

                app = cloudpickle.loads(sys.stdin.buffer.read())
                await kernel.started()
                driver = await kernel.create_run(app, arg, name or None)
            await kernel.store_ready()
            assert kernel.recorder is not None and kernel.bus is not None
            await kernel.recorder.wait_recorded(await kernel.bus.last_seq(), timeout=30)
            _name_log(log_path, driver.run_id)
            tell(run=driver.run_id)
            return driver

        return asyncio.run(_host(kernel, make))
    except KernelError as exc:
        tell(error=str(exc), kind=type(exc).__name__)
        return 1
    except BaseException as exc:
        tell(error=f"{type(exc).__name__}: {exc}", kind="KernelError")
        raise
    finally:
        tell(error="the kernel ended before its run started", kind="KernelError")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
