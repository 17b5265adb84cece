"""The kernel's settings: every flag has an ``LK_*`` environment variable.

Executors are configured in ``lightning-kernel.toml`` (found in the working directory, or named by
``--config FILE`` / ``LK_CONFIG``), one table per executor::

    [executors.ssh]
    known_hosts = "~/.ssh/known_hosts"

Each plugin gets its own table through ``lk_executors(config)``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

CONFIG_FILE = "lightning-kernel.toml"


@dataclass
class Config:
    data_dir: str = ".lightning-kernel"
    db: str | None = None
    """SQLAlchemy URL; ``sqlite:///<data dir>/kernel.db`` when None."""
    nats: str | None = None
    """``nats://host:port`` of an existing server; an embedded one is started when None."""
    nats_token: str | None = None
    artifacts: str | None = None
    """fsspec URL of the artifact store; ``file://<data dir>/artifacts`` when None."""
    s3_endpoint: str | None = None
    """Endpoint URL of an S3-compatible store; AWS's (or ``AWS_ENDPOINT_URL``) when None."""
    executor: str = "local"
    echo: bool = True
    config_file: str | None = None
    """The ``lightning-kernel.toml`` read, None when there is none."""
    executors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The ``[executors.<name>]`` tables of the config file."""

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        env = os.environ
        cfg = cls(
            data_dir=env.get("LK_DATA_DIR", ".lightning-kernel"),
            db=env.get("LK_DB") or None,
            nats=env.get("LK_NATS") or None,
            nats_token=env.get("LK_NATS_TOKEN") or None,
            artifacts=env.get("LK_ARTIFACTS") or None,
            s3_endpoint=env.get("LK_S3_ENDPOINT_URL") or None,
            executor=env.get("LK_EXECUTOR", "local"),
            config_file=env.get("LK_CONFIG") or None,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        cfg.data_dir = os.path.abspath(cfg.data_dir)
        if cfg.config_file is None and os.path.isfile(CONFIG_FILE):
            cfg.config_file = os.path.abspath(CONFIG_FILE)
        if cfg.config_file is not None:
            cfg.executors = read_executor_tables(cfg.config_file)
        return cfg

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{os.path.join(self.data_dir, 'kernel.db')}"

    @property
    def artifacts_url(self) -> str:
        return self.artifacts or f"file://{os.path.join(self.data_dir, 'artifacts')}"

    @property
    def storage_options(self) -> dict[str, str]:
        """fsspec options of the artifact store."""
        return {"endpoint_url": self.s3_endpoint} if self.s3_endpoint else {}

    @property
    def worker_env(self) -> dict[str, str]:
        """What every worker's environment needs, on any machine: the S3 endpoint, for the artifact
        store and for the Works' own s3:// Drives."""
        return {"LK_S3_ENDPOINT_URL": self.s3_endpoint} if self.s3_endpoint else {}


def read_executor_tables(path: str) -> dict[str, dict[str, Any]]:
    """The ``[executors.<name>]`` tables of ``path``; an error names the file and what is wrong."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (--config / LK_CONFIG)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    unknown = sorted(set(data) - {"executors"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown table(s) {unknown}; it holds [executors.<name>] tables"
        )
    tables = data.get("executors", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"config file {path}: `executors` must be a table of [executors.<name>] tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {path}: [executors.{name}] must be a table, not {type(table).__name__}"
            )
    return tables
