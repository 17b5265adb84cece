"""An artifact store reached through the kernel: the backend of a worker on a host that cannot see it.

A worker on an SSH host has no access to the kernel's machine but NATS (through the executor's
forwarded port). When the kernel's store is a local folder, the worker's store URL is
``lk-relay://<service>`` and this backend asks the kernel's relay (``lightning_kernel.executors.ssh``)
for each operation with a NATS request on ``lkrelay.<service>`` (outside the streams' subjects). Small things (lookups, named JSON
documents, the pickled app) travel in the messages, in chunks under the server's payload limit; files
do not: for ``upload``/``download`` the relay copies them between the host and the kernel's folder
itself, over SFTP on the SSH connection it already holds (see that module for why and what it costs).

Requests carry their operation in the ``op`` header; a failed one answers with an ``error`` header
(and ``missing`` when a key or file does not exist, raised here as ``FileNotFoundError``, as the local
backend does).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any

Request = Callable[[str, bytes, dict[str, str], float], tuple[dict[str, str], bytes]]
"""``request(subject, data, headers, timeout) -> (reply headers, reply data)``."""

CHUNK = 512 * 1024
"""Bytes per message: under NATS's default 1 MB payload limit, with room for headers."""
SMALL_TIMEOUT = 30.0
TRANSFER_TIMEOUT = float(os.environ.get("LK_RELAY_TIMEOUT", "900"))
"""Seconds an upload or download of a batch of files may take before the worker gives up on it."""


class RelayError(OSError):
    """The relay refused or failed an operation; the message is the relay's."""


class RelayBackend:
    """The ``Backend`` of ``lightning_kernel.storage._artifacts`` over NATS requests to the relay."""

    def __init__(self, url: str, request: Request) -> None:
        service = url.split("://", 1)[1].strip("/")
        if not service or any(c in service for c in " *>\t"):
            raise ValueError(f"relay store URL {url!r} names no relay service")
        self.url = url
        self.subject = f"lkrelay.{service}"
        self._request = request

    def _ask(
        self, op: str, data: bytes = b"", timeout: float = SMALL_TIMEOUT, **headers: str
    ) -> tuple[dict[str, str], bytes]:
        reply_headers, reply = self._request(self.subject, data, {"op": op, **headers}, timeout)
        error = reply_headers.get("error")
        if error:
            if reply_headers.get("missing"):
                raise FileNotFoundError(error)
            raise RelayError(f"the kernel's artifact relay could not {op}: {error}")
        return reply_headers, reply

    def _json(self, op: str, body: Any, timeout: float = SMALL_TIMEOUT) -> Any:
        _, reply = self._ask(op, json.dumps(body).encode(), timeout)
        return json.loads(reply) if reply else None

    def check(self) -> None:
        self._ask("check")

    def exists(self, keys: Sequence[str]) -> list[bool]:
        return [bool(x) for x in self._json("exists", list(keys))]

    def read(self, key: str) -> bytes:
        parts: list[bytes] = []
        offset = 0
        while True:
            headers, data = self._ask("read", key=key, offset=str(offset), length=str(CHUNK))
            parts.append(data)
            offset += len(data)
            if offset >= int(headers.get("size", "0")) or not data:
                return b"".join(parts)

    def write(self, key: str, data: bytes) -> None:
        upload = uuid.uuid4().hex
        view = memoryview(data)
        offset = 0
        while True:
            chunk = bytes(view[offset : offset + CHUNK])
            offset += len(chunk)
            final = offset >= len(data)
            self._ask("write", chunk, key=key, upload=upload, final="1" if final else "")
            if final:
                return

    def upload(self, pairs: Sequence[tuple[str, str]]) -> None:
        todo = [[os.path.abspath(local), key] for local, key in pairs]
        size = sum(os.path.getsize(local) for local, _ in todo)
        self._json("upload", todo, TRANSFER_TIMEOUT + size / 20e6)

    def download(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._json("download", [[key, os.path.abspath(local)] for key, local in pairs], TRANSFER_TIMEOUT)

    def list(self, prefix: str) -> list[str]:
        return [str(k) for k in self._json("list", prefix)]

    def delete(self, keys: Sequence[str]) -> None:
        self._json("delete", list(keys))
