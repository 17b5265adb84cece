"""What crosses from the kernel to an executor and back: the worker's spec and how it ended.

Both are plain data, JSON on the wire, and import nothing heavy: an executor plugin (and the host it
ships a worker to) sees only these. A spec names no path of the kernel's machine: the Work's folder
is relative to the host's work dir, the app's code comes as a content-addressed ``code`` artifact,
and NATS and the artifact store are URLs the executor makes reachable from its hosts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lightning_kernel._version import __version__

CAUSES = ("exited", "killed", "preempted", "lost")
"""Why a worker ended, as ``work.worker_exited`` records it:

- ``exited``: its process ended by itself (code 0 or not);
- ``killed``: a signal ended it (the kernel's terminate, the OOM killer, a user's ``kill``);
- ``preempted``: the machine under it was taken away (a spot reclaim, a node removed);
- ``lost``: the kernel can no longer see it (its host or the connection to it is gone) and fenced it.
"""


CARRIED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "LK_S3_ENDPOINT_URL",
)
"""The kernel's S3 settings, carried to a worker on another machine whose store is S3 (in its 0600 spec
there, never in its command line)."""


@dataclass
class WorkerSpec:
    """Everything a worker needs to host ``work`` of ``run_id``; JSON, so any executor can ship it."""

    run_id: str
    work: str
    nats_url: str
    nats_token: str | None
    artifacts: str
    app: str
    """Artifact ref of the pickled LightningApp."""
    start_seq: int
    """The stream sequence from which the worker reads the Work's commands."""
    work_root: str
    """The Work's folder, relative to the host's work dir (``LK_WORK_DIR``, else
    ``~/.lightning-kernel/works``); an absolute path is used as it is (the local executor's)."""
    attempt: int = 1
    """This worker's number among the Work's workers; events of an older attempt are ignored."""
    code: str = ""
    """Artifact ref of the app's folder (a tar archive); empty for an app without one."""
    module: str = ""
    """The app module's import name, imported from ``entry`` inside ``code`` before unpickling."""
    entry: str = ""
    """The app file's path inside ``code``."""
    kernel: str = ""
    """The id of the kernel that started this worker (the holder of the run's lease)."""
    lease_s: float = 10.0
    """Seconds without a live kernel after which the worker stops its call and exits."""
    version: str = __version__
    """The kernel's lightning-kernel version; a worker of another version refuses to run."""
    echo: bool = True
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    executor: str = ""
    """The name of the executor that hosts the worker (a cloud Mount needs the cloud's)."""
    """The app file's arguments (``run app --app_args``), as the kernel ran it."""
    compute: dict[str, Any] = field(default_factory=dict)
    """The Work's ``CloudCompute`` as a dict (``name``, ``resources``, ``interruptible``...): what an
    executor that places Works (SSH hosts, a Ray cluster) reads to choose where."""
    preamble: str = ""
    """Text the worker prints first, into the Work's logs (an executor's set-up output on its host)."""
    resume_vars: dict[str, Any] | None = None
    """A relaunched Work's last recorded state, applied over its first command's (a resume)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: str) -> WorkerSpec:
        raw = json.loads(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            # A spec from a newer kernel: say which version, not a TypeError about arguments.
            raise ValueError(
                f"worker spec has fields {unknown} that lightning-kernel {__version__} does not know; "
                f"the kernel runs lightning-kernel {raw.get('version', '?')}: install the same version here"
            )
        return cls(**raw)


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended: ``code`` (0 is a clean exit), or ``signal`` when a signal killed it, and the
    ``cause`` recorded in ``work.worker_exited`` (one of ``CAUSES``)."""

    code: int | None
    signal: int | None = None
    cause: str = ""
    message: str = ""
    """What the executor knows beyond the code (a host gone, a node preempted)."""

    def __post_init__(self) -> None:
        if not self.cause:
            object.__setattr__(self, "cause", "killed" if self.signal is not None else "exited")
        if self.cause not in CAUSES:
            raise ValueError(f"WorkerExit cause {self.cause!r} is not one of {CAUSES}")

    @property
    def clean(self) -> bool:
        return self.code == 0 and self.cause == "exited"

    def describe(self) -> str:
        if self.message:
            return self.message
        if self.cause == "preempted":
            return "the worker's machine was preempted"
        if self.cause == "lost":
            return "the worker was lost (its host or the connection to it went away)"
        if self.signal is not None:
            import signal as _signal

            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"the worker process was killed by {name}"
        return f"the worker process exited with code {self.code}"
