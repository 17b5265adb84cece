"""The errors lightning-kernel raises.

Every error is a ``KernelError``; each names the run, Work, path, URL or event involved and says
what to do. The tree::

    KernelError
    ├── ConfigError                 a flag, variable or URL that cannot be used
    │   └── ServiceUnreachable      NATS, the database or the artifact store did not answer
    ├── AppLoadError                an app file that is missing or defines no LightningApp
    ├── StateError                  a component attribute that cannot be part of the state
    ├── WorkRunError                a Work's run() broke the contract (returned a value, bad args)
    ├── RunNotFound                 an unknown run id
    ├── EventError                  an event that cannot be decoded, or an unknown type/version
    ├── StoreError                  the SQL store refused an operation
    ├── ArtifactError               the artifact store refused an operation
    │   └── PathEscapeError         a lit:// path that would leave its Work's root
    ├── ExecutorError               an executor plugin that failed to load or to start a worker
    └── ReplayError                 a replay whose state differs from the recorded one
"""

from __future__ import annotations


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


class AppLoadError(KernelError):
    """An app file that is missing, fails to import, or defines no ``LightningApp``."""


class StateError(KernelError):
    """A component attribute that cannot be part of the JSON state."""

    def __init__(self, component: str, attribute: str, reason: str) -> None:
        self.component = component
        self.attribute = attribute
        self.reason = reason
        super().__init__(f"{component}.{attribute}: {reason}")


class WorkRunError(KernelError):
    """A Work's ``run()`` broke the contract: it returned a value, or was called wrongly."""


class RunNotFound(KernelError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r}; `lightning-kernel runs` lists the runs")


class EventError(KernelError):
    """An event that cannot be encoded or decoded."""


class StoreError(KernelError):
    """The SQL store refused an operation."""


class ArtifactError(KernelError):
    """The artifact store refused an operation."""


class PathEscapeError(ArtifactError):
    """A ``lit://`` path that would leave its Work's root."""


class ExecutorError(KernelError):
    """An executor plugin that failed to load, or failed to start or watch a worker."""


class ReplayError(KernelError):
    """Replaying a run's events gave a state that differs from the recorded one."""
