"""The errors lightning-kernel raises.

Every error is a ``KernelError``; each names the run, Work, path, URL or event involved and says
what to do. The tree::

    KernelError
    ├── ConfigError                 a flag, variable or URL that cannot be used
    │   ├── ServiceUnreachable      NATS, the database or the artifact store did not answer
    │   ├── ParameterError          an option or query parameter out of range (names it)
    │   └── NotAuthorized           a server that wants its token, or refused the one sent
    ├── AppLoadError                an app file that is missing or defines no LightningApp
    ├── MissingExtra                an optional package a feature needs (streamlit, panel) is absent
    ├── StateError                  a component attribute that cannot be part of the state
    ├── WorkRunError                a Work's run() was called wrongly (arguments that cannot travel)
    │   └── ScriptError             a script run by a component (PopenPythonScript...) exited non-zero
    ├── ScheduleError               a cron pattern or start time that flow.schedule() cannot use
    ├── RunNotFound                 an unknown run id
    ├── ComponentNotFound           a component name a run does not have
    ├── EventError                  an event that cannot be decoded, or an unknown type/version
    │   └── PayloadTooLarge         state or arguments bigger than NATS carries in one message
    ├── StoreError                  the SQL store refused an operation
    ├── ArtifactError               the artifact store refused an operation
    │   ├── PathEscapeError         a lit:// path that would leave its Work's root
    │   └── MountError              a Mount the Work's executor cannot provide
    ├── ExecutorError               an executor plugin that failed to load or to start a worker
    ├── LeaseHeld                   a run or a database that another kernel holds
    ├── LeaseLost                   a lease this kernel held and lost
    ├── KernelFault                 NATS or the database failed under a running kernel
    ├── ForkError                   a fork at a seq that is no event of the run, or after its end
    └── ReplayError                 a history that cannot be replayed as asked
        └── NondeterminismError     flow code that, replayed, emits something else than the run did
"""

from __future__ import annotations

from typing import Any


class KernelError(Exception):
    """The root of every error lightning-kernel raises on purpose."""


class ConfigError(KernelError):
    """A flag, environment variable or URL that cannot be used."""


class ServiceUnreachable(ConfigError):
    """A service (NATS, the database, the artifact store) did not answer at ``url``."""

    def __init__(self, service: str, url: str, reason: str) -> None:
        self.service = service
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {service} at {url}: {reason}")


class ParameterError(ConfigError):
    """An option or HTTP query parameter whose value cannot be used; ``name`` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class NotAuthorized(ConfigError):
    """A ``serve`` that refused a request for want of its token (HTTP 401)."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


class StreamMismatch(ConfigError):
    """A database that would record the wrong stream, or a stream with a gap it cannot record."""


class AppLoadError(KernelError):
    """An app file that is missing, fails to import, or defines no ``LightningApp``."""


class MissingExtra(KernelError, ImportError):
    """``what`` needs the package ``package``, which is not installed: ``pip install <install>``."""

    def __init__(self, what: str, package: str, install: str) -> None:
        self.what = what
        self.package = package
        self.install = install
        super().__init__(f"{what} needs {package}, which is not installed: pip install '{install}'")


class StateError(KernelError):
    """A component attribute that cannot be part of the JSON state."""

    def __init__(self, component: str, attribute: str, reason: str) -> None:
        self.component = component
        self.attribute = attribute
        self.reason = reason
        super().__init__(f"{component}.{attribute}: {reason}")


class WorkRunError(KernelError):
    """A Work's ``run()`` was called wrongly: an argument that is neither JSON nor picklable."""


class ScheduleError(KernelError):
    """A ``flow.schedule()`` call whose cron pattern (or ``start_time``) cannot be used."""

    def __init__(self, flow: str, pattern: str, reason: str) -> None:
        self.flow = flow
        self.pattern = pattern
        self.reason = reason
        where = f"{flow}.schedule" if flow else "schedule"
        super().__init__(
            f"{where}({pattern!r}): {reason.rstrip('.')}; use a cron expression ('*/5 * * * *', see "
            "https://crontab.guru) or one of midnight, hourly, daily, weekly, monthly, yearly, annually"
        )


class ScriptError(WorkRunError):
    """A script that a component ran (``PopenPythonScript``, ``TracerPythonScript``) exited with
    ``exit_code``; the Work's call fails with it."""

    def __init__(self, work: str, script: str, exit_code: int) -> None:
        self.work = work
        self.script = script
        self.exit_code = exit_code
        super().__init__(f"{work}: script {script} exited with code {exit_code}")


class RunNotFound(KernelError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r}; `lightning-kernel runs` lists the runs")


class ComponentNotFound(KernelError):
    """A component name (``root.w_1``) that the run does not have."""

    def __init__(self, run_id: str, component: str, known: list[str]) -> None:
        self.run_id = run_id
        self.component = component
        self.known = known
        super().__init__(
            f"run {run_id} has no component {component!r}; its components are: {', '.join(known) or 'none'}"
        )


class EventError(KernelError):
    """An event that cannot be encoded or decoded."""


class PayloadTooLarge(EventError):
    """State or arguments that, as JSON, exceed what NATS carries in one message (``max_payload``)."""

    def __init__(self, where: str, attribute: str, size: int, limit: int) -> None:
        self.where = where
        self.attribute = attribute
        self.size = size
        self.limit = limit
        super().__init__(
            f"{where}{'.' + attribute if attribute else ''} is {_mb(size)} as JSON, over the {_mb(limit)} "
            "that NATS carries in one message (its max_payload): keep big values in a Payload, a Drive "
            "or a Path, and only their reference in the state"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


class StoreError(KernelError):
    """The SQL store refused an operation."""


class ArtifactError(KernelError):
    """The artifact store refused an operation."""


class PathEscapeError(ArtifactError):
    """A ``lit://`` path that would leave its Work's root."""


class MountError(ArtifactError):
    """A ``Mount`` of Work ``work`` that cannot be provided where it runs (an ``s3://`` mount under the
    local executor, a mount path already taken)."""

    def __init__(self, work: str, source: str, mount_path: str, reason: str) -> None:
        self.work = work
        self.source = source
        self.mount_path = mount_path
        super().__init__(f"{work}: cannot mount {source} at {mount_path}: {reason}")


class ExecutorError(KernelError):
    """An executor plugin that failed to load, or failed to start or watch a worker."""


class ReplayError(KernelError):
    """A run's history cannot be replayed as asked (no such seq, not a history)."""


class NondeterminismError(ReplayError):
    """The flow's code, replayed on a run's recorded state, emits something else than the run recorded.

    ``seq`` is the recorded event that differs, ``input_seq`` the state the iteration ran on,
    ``component`` the Work or flow concerned; ``recorded`` and ``replayed`` what differs."""

    def __init__(
        self,
        message: str,
        seq: int,
        input_seq: int,
        component: str,
        recorded: Any = None,
        replayed: Any = None,
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.input_seq = input_seq
        self.component = component
        self.recorded = recorded
        self.replayed = replayed


class LeaseHeld(KernelError):
    """A run (or a database's recorder) is held by another kernel."""

    def __init__(self, what: str, holder: str, ttl: float) -> None:
        self.what = what
        self.holder = holder
        self.ttl = ttl
        super().__init__(
            f"{what} is held by {holder}; stop it there, or wait for its lease to lapse "
            f"({ttl:.0f} s after that kernel stops renewing it)"
        )


class LeaseLost(KernelError):
    """This kernel lost a lease it held (another kernel took it, or it lapsed): it stops at once."""


class KernelFault(KernelError):
    """A service failed under a running kernel (NATS lost, the database unwritable): the runs it hosts
    are interrupted with ``cause``, and resume once the service is back."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class ForkError(KernelError):
    """``fork RUN --at SEQ`` that cannot be made: ``at`` is no event of run ``run_id`` (0, past its
    end, another run's), or the run had ended by then."""

    def __init__(self, run_id: str, at: int, message: str) -> None:
        self.run_id = run_id
        self.at = at
        super().__init__(message)
