"""Shared fixtures: real services only (nats-server, PostgreSQL, moto's S3 server)."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")

pytest_plugins = [
    "_fixtures.nats",
    "_fixtures.ray_cluster",
    "_fixtures.s3",
    "_fixtures.sql",
    "_fixtures.sshd",
]
