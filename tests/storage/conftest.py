"""Storage fixtures: the artifact store on a local folder and on a real S3 endpoint (moto's server),
and simulated Works (a root folder and a storage context each) in the test process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from _fixtures._ports import free_port, wait_port
from _fixtures.s3 import S3Server, s3_bucket, s3_server  # noqa: F401
from lightning_kernel.storage import ArtifactStore, StorageContext
from lightning_kernel.storage._context import using


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> ArtifactStore:
    """The artifact store, once per kind: a local folder, then a fresh bucket on moto."""
    if request.param == "file":
        return ArtifactStore(f"file://{tmp_path}/artifacts")
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.make_bucket()
    return ArtifactStore(f"s3://{bucket}/lk", server.storage_options())


@pytest.fixture
def local_store(tmp_path: Any) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path}/artifacts")


@dataclass
class Work:
    """A simulated Work: its root folder, its storage context and the events it published."""

    ctx: StorageContext
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.ctx.work_root

    @property
    def name(self) -> str:
        return self.ctx.work_name

    @contextmanager
    def running(self) -> Iterator[Work]:
        """Inside this Work's run(): its context is current and its root is the current folder."""
        before = os.getcwd()
        os.chdir(self.root)
        try:
            with using(self.ctx):
                yield self
        finally:
            os.chdir(before)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@pytest.fixture
def make_work(tmp_path: Any) -> Callable[..., Work]:
    """``make_work(store, "root.train", root=None, run_id="run1")``: a Work with an empty root."""

    def make(store: ArtifactStore, name: str, root: str | None = None, run_id: str = "run1") -> Work:
        folder = root or str(tmp_path / "hosts" / f"{name}-{len(os.listdir(tmp_path))}")
        os.makedirs(folder, exist_ok=True)
        events: list[tuple[str, dict[str, Any]]] = []
        ctx = StorageContext(
            store=store,
            run_id=run_id,
            work_name=name,
            work_root=folder,
            publish=lambda kind, body: events.append((kind, body)),
        )
        return Work(ctx=ctx, events=events)

    return make


@pytest.fixture(scope="module")
def s3_auth_server() -> Iterator[S3Server]:
    """A moto server that checks credentials (moto accepts any by default)."""
    exe = shutil.which("moto_server")
    assert exe is not None, "moto_server is not installed: pip install 'moto[server]'"
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
