"""The Python SDK: ``lightning_kernel.Client``, one API over a local data dir and over a ``serve``.

::

    from lightning_kernel import Client

    client = Client()                                   # the runs of ./.lightning-kernel
    client = Client("http://host:7501", token="...")    # a `lightning-kernel serve`
    run = client.submit("app.py")
    for event in client.events(run.id):                 # follows the run, ends when it ends
        print(event.seq, event.type)

Both modes give the same typed results (``Run``, ``Event``, ``LogLine``, ``RunState``: the records the
kernel itself moves, from ``_records``) and raise the same errors (``lightning_kernel.errors``):
``RunNotFound``, ``ComponentNotFound``, ``ParameterError``, ``NotAuthorized`` (a ``serve`` refused the
token), ``ServiceUnreachable``. ``run`` arguments take a run id or ``latest``.

Local mode reads the data dir's SQL store (never creating one: a mistyped ``data_dir`` is an error, not
a new empty database). What needs a kernel starts one as ``run app`` would, in a detached process of
its own (``_sdk_local``): ``submit`` and ``resume`` return once the run is recorded, and the run goes
on after this process ends. ``stop`` reaches the kernel that drives the run through NATS, as
``lightning-kernel stop`` does. HTTP mode talks to ``serve``'s API (``_client``); ``events`` and
``logs(follow=True)`` read its server-sent event streams.

Tried and left: returning JSON dicts (what the HTTP API gives) — typos in keys fail late and far from
the call; one class per mode — a script written against the local data dir should run unchanged
against a server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._records import EventRecord, LogLine, RunInfo
from .errors import KernelError, ParameterError

if TYPE_CHECKING:
    from ._app import LightningApp
    from ._config import Config
    from ._replay import ReplayResult

Run = RunInfo
"""A run: ``id``, ``name``, ``app_file``, ``status`` (running, interrupted, succeeded, failed,
stopped), ``created_at``, ``updated_at``, ``message``, ``last_seq``."""
Event = EventRecord
"""One recorded event: ``seq``, ``id``, ``run_id``, ``type``, ``version``, ``ts``, ``source``, ``body``,
``input_seq``."""


@dataclass(frozen=True, slots=True)
class RunState:
    """A run's state folded from its events: ``run`` (id, name, status, message, seq...), ``root`` (the
    ``{"vars", "flows", "works"}`` tree, as ``LightningFlow.state`` gives it, each Work with its
    status) and ``works`` (each Work's status, calls and worker)."""

    run: dict[str, Any]
    root: dict[str, Any]
    works: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.run["status"])

    @property
    def seq(self) -> int:
        """The last event folded into this state."""
        return int(self.run.get("seq", 0))

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "root": self.root, "works": self.works}


@dataclass(frozen=True, slots=True)
class StateDiff:
    """The difference between two states: of ``run`` at ``from_seq`` and ``to_seq``, or of ``run`` and
    ``other`` now. ``changes`` is the differ's report (components, attributes, statuses, calls, Paths)."""

    run: str
    other: str | None
    from_seq: int | None
    to_seq: int | None
    changes: dict[str, Any]

    @property
    def same(self) -> bool:
        return bool(self.changes.get("same"))


class Backend(Protocol):
    """What a mode implements; ``Client`` checks the arguments and resolves ``latest`` first."""

    def runs(self, limit: int) -> list[Run]: ...
    def run(self, run_id: str) -> Run: ...
    def submit(
        self, app: LightningApp | str, name: str | None, argv: list[str], env: dict[str, str]
    ) -> Run: ...
    def state(self, run_id: str, at: int | None) -> RunState: ...
    def history(self, run_id: str, after: int, limit: int | None) -> list[Event]: ...
    def events(self, run_id: str, after: int, follow: bool) -> Iterator[Event]: ...
    def logs(self, run_id: str, component: str | None, after: int, follow: bool) -> Iterator[LogLine]: ...
    def stop(self, run_id: str, wait: float) -> Run: ...
    def resume(self, run_id: str) -> Run: ...
    def replay(self, run_id: str, app: str | None, until: int | None) -> dict[str, Any]: ...
    def diff(
        self, run_id: str, other: str | None, from_seq: int | None, to_seq: int | None
    ) -> dict[str, Any]: ...
    def fork(self, run_id: str, at: int, app: str | None) -> str: ...
    def close(self) -> None: ...


class Client:
    """The runs of a local data dir (``url`` None) or of the ``lightning-kernel serve`` at ``url``.

    Local: ``data_dir`` (default ``LK_DATA_DIR`` or ``.lightning-kernel``), ``db`` (``LK_DB``, default the
    data dir's SQLite), and for the kernels it starts ``config`` (a ``Config``, as the CLI builds it).
    HTTP: ``token`` (default ``LK_SERVER_TOKEN``, else the ``server.token`` of ``data_dir``: a client
    in the server's own folder needs nothing else).

    ``param_names`` spells the parameters in error messages as the caller's user typed them (the CLI
    passes ``{"at": "--at"}``); by default they are named as the methods' arguments.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        data_dir: str | None = None,
        db: str | None = None,
        *,
        config: Config | None = None,
        param_names: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.param_names = {"at": "at", **(param_names or {})}
        self._backend: Backend
        if self.url is not None:
            from ._client import HttpBackend

            self._backend = HttpBackend(self.url, token, data_dir or (config.data_dir if config else None))
        else:
            from ._sdk_local import LocalBackend

            if config is None:
                from ._config import Config

                config = Config.from_env(data_dir=data_dir, db=db)
            self._backend = LocalBackend(config, self.param_names)

    def __repr__(self) -> str:
        return f"Client({self.url!r})" if self.url else f"Client(data_dir={self.data_dir!r})"

    @property
    def data_dir(self) -> str | None:
        return getattr(self._backend, "data_dir", None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store (local mode); the client can be used again afterwards."""
        self._backend.close()

    # -- reading ------------------------------------------------------------------------------------

    def runs(self, limit: int = 100) -> list[Run]:
        """The runs, newest first."""
        self._at_least("limit", limit, 1)
        return self._backend.runs(limit)

    def run(self, run: str) -> Run:
        """One run (``latest``: the newest). Raises ``RunNotFound``."""
        return self._backend.run(run)

    def state(self, run: str, at: int | None = None) -> RunState:
        """The run's state now, or just after its event ``at`` (a seq within the run's events)."""
        if at is not None and (isinstance(at, bool) or not isinstance(at, int)):
            _check(self.param_names, "at", at, 1)
        return self._backend.state(run, at)

    def history(self, run: str, after: int = 0, limit: int | None = None) -> list[Event]:
        """The run's recorded events after seq ``after``, oldest first (``limit`` of them at most)."""
        self._at_least("after", after, 0)
        if limit is not None:
            self._at_least("limit", limit, 1)
        return self._backend.history(self.run(run).id, after, limit)

    def events(self, run: str, after: int = 0, follow: bool = True) -> Iterator[Event]:
        """The run's events after ``after`` as they are recorded. With ``follow`` the iterator waits for
        new ones and ends when the run ends (succeeded, failed, stopped); an interrupted run is followed
        on, as it goes on once resumed (break at a ``run.interrupted`` event to stop there). Without
        ``follow`` it ends at the last recorded event."""
        self._at_least("after", after, 0)
        return self._backend.events(self.run(run).id, after, follow)

    def logs(
        self, run: str, component: str | None = None, follow: bool = False, after: int = 0
    ) -> Iterator[LogLine]:
        """What the run's components printed (one ``component``: ``root``, ``root.w_1``...), oldest
        first; with ``follow``, lines as they come until the run ends. Raises ``ComponentNotFound``."""
        self._at_least("after", after, 0)
        return self._backend.logs(self.run(run).id, component, after, follow)

    # -- acting -------------------------------------------------------------------------------------

    def submit(
        self,
        app: LightningApp | str | os.PathLike[str],
        name: str | None = None,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        """Start a run of ``app`` (a ``LightningApp``, or the path of an app file); returns it once it
        is recorded. Locally its kernel runs in a process of its own (one kernel per data dir: a
        second submit waits for the first run's end, then fails); on a server, the server hosts it.
        ``argv``: the app file's arguments (``run app --app_args``); ``env``: variables for every Work
        (``--env``)."""
        argv, env = list(argv or []), dict(env or {})
        if (argv or env) and not isinstance(app, (str, os.PathLike)):
            raise KernelError("argv and env are an app file's: submit the file's path, not a LightningApp")
        return self._backend.submit(
            app if not isinstance(app, os.PathLike) else os.fspath(app), name, argv, env
        )

    def stop(self, run: str, wait: float = 30.0) -> Run:
        """Stop the run: its Works stop and it ends as ``stopped``. Waits up to ``wait`` s for the end;
        returns the run as it is then. A run that already ended is an error. Locally this is
        ``lightning-kernel stop``'s, which says on stderr which kernel it asked (or that it ended the
        run itself: no kernel drove it)."""
        return self._backend.stop(self.run(run).id, wait)

    def resume(self, run: str) -> Run:
        """Carry on a run that did not end (a kernel stopped or died under it): it is rebuilt from its
        events, Works that succeeded are not run again. Returns once the resumption is recorded."""
        return self._backend.resume(self.run(run).id)

    def replay(self, run: str, app: str | None = None, until: int | None = None) -> ReplayResult:
        """Re-run the flow's code (or the flow of the app file ``app``) at each recorded iteration of
        ``run`` (up to seq ``until``), against the recorded state, and compare what it emits with what
        was recorded. Starts no Work and publishes nothing. ``result.ok``; ``result.error()`` is the
        first difference as a ``NondeterminismError``."""
        from ._replay import Difference, ReplayResult

        report = self._replay(self.run(run).id, app, until)
        return ReplayResult(
            run_id=report["run"],
            iterations=report["iterations"],
            events=report["events"],
            differences=[Difference(**d) for d in report["differences"]],
            until=report["until"],
        )

    def diff(
        self, run: str, other: str | None = None, from_seq: int | None = None, to_seq: int | None = None
    ) -> StateDiff:
        """The state difference of ``run`` between ``from_seq`` and ``to_seq`` (its start and now by
        default), or between ``run`` and the run ``other``."""
        run_id = self.run(run).id
        other_id = self.run(other).id if other is not None else None
        changes = self._diff(run_id, other_id, from_seq, to_seq)
        return StateDiff(run_id, other_id, from_seq, to_seq, changes)

    def fork(self, run: str, at: int, app: str | None = None) -> Run:
        """A new run whose history starts as ``run``'s events up to seq ``at``, then goes on live (with
        the flow of the app file ``app`` when given): calls that had succeeded keep their results."""
        return self.run(self._fork(self.run(run).id, at, app))

    # The engines of replay, diff and fork, one seam each (the HTTP backend calls the server's).
    def _at_least(self, name: str, value: int, low: int) -> None:
        _check(self.param_names, name, value, low)

    def _replay(self, run: str, app: str | None = None, until: int | None = None) -> dict[str, Any]:
        return self._backend.replay(run, app, until)

    def _diff(
        self, run: str, other: str | None = None, from_seq: int | None = None, to_seq: int | None = None
    ) -> dict[str, Any]:
        return self._backend.diff(run, other, from_seq, to_seq)

    def _fork(self, run: str, at: int, app: str | None = None) -> str:
        return self._backend.fork(run, at, app)


def app_file_of(app: Any) -> str:
    """The file of a ``LightningApp`` object: where its root flow's class is defined (the run's name is
    that file's), ``app.py`` when it has none. Anything else is refused."""
    import sys

    from ._app import LightningApp

    if not isinstance(app, LightningApp):
        raise KernelError(f"submit() takes a LightningApp or an app file's path, not a {type(app).__name__}")
    module = sys.modules.get(type(app.root).__module__)
    path = getattr(module, "__file__", None)
    return os.path.abspath(path) if path and path.endswith(".py") else "app.py"


def _check(names: dict[str, str], name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        shown = names.get(name, name)
        given = f"{shown} {value!r}" if shown.startswith("-") else f"{shown}={value!r}"
        raise ParameterError(name, f"{given}: it must be an integer of at least {low}")
