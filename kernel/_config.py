"""The kernel's settings: every flag has an ``LK_*`` environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass


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
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        cfg.data_dir = os.path.abspath(cfg.data_dir)
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
