"""A real S3 endpoint: moto's server on 127.0.0.1, one per test session.

moto keeps everything in memory, so a test that resumes must keep using the same server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ._ports import free_port, wait_port


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def storage_options(self) -> dict[str, object]:
        return {"client_kwargs": {"endpoint_url": self.endpoint_url}, "key": "testing", "secret": "testing"}

    def make_bucket(self, name: str | None = None) -> str:
        import s3fs

        bucket = name or f"lk-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.storage_options()).mkdir(bucket)  # type: ignore[arg-type]
        return bucket


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server is not installed: pip install 'moto[server]'")
    port = free_port()
    # s3fs and boto read these; moto accepts any credentials. No region in client_kwargs (see
    # ENVIRONMENT.md: moto rejects the location constraint).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.make_bucket()
