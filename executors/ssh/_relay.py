"""The artifact relay: the kernel's local artifact store, served to the workers on SSH hosts.

With the default store (a folder in the kernel's data dir), a worker on a host sees nothing of it.
Its store is ``lk-relay://<store>.<host>`` (``lightning_kernel.storage._relay``): lookups, named JSON
documents and small objects (the pickled app, manifests) come and go as NATS requests over the port
the executor forwards anyway; files are copied by this relay, over SFTP on the executor's connection
to that host: ``upload`` reads the host's files into the store, ``download`` writes store objects to
the host (to the partial names the worker gives, which it renames into place).

Why SFTP and not the JetStream object store over the forwarded port: measured here (200 MB of random
bytes, loopback sshd, 2 cores, asyncssh 2.24), asyncssh's SFTP moved 135 MB/s up and 153 MB/s down
where OpenSSH's scp moved 160 and 165 MB/s in the same run (85-93%); the object store would store every
file a second time inside JetStream, push it through Python-level chunked publishes on both sides,
and leave the kernel's folder (which local Works and ``lightning-kernel`` commands read) without it.
A Path handed between two hosts goes host A -> kernel store -> host B: two copies through the
kernel's machine, as ``scp`` between hosts that cannot reach each other does.

Every key a request names is checked again here (the relay is what stands between a NATS client and
the kernel's disk): relative, no ``..``, inside the store's folder. The requests need the NATS token,
which already grants running code on the hosts; what the relay reads or writes on a host is what
the SSH user may.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PARALLEL = 4


def service_id(store_root: str, host: str) -> str:
    """The relay's subject token for a store folder and a host (two kernels on one NATS, each with
    its own folder, never answer for each other)."""
    return f"{hashlib.sha256(store_root.encode()).hexdigest()[:16]}.{host}"


class BadRequest(Exception):
    pass


class Relay:
    """Serves ``lkrelay.<service_id(root, host)>`` for each host, on the executor's NATS connection."""

    def __init__(self, nc: Any, store_root: str, links: Callable[[str], Any]) -> None:
        from lightning_kernel.storage._backends import TMP_DIR, LocalBackend

        self.nc = nc
        self.backend = LocalBackend(store_root)
        self.root = self.backend.root
        self._tmp_dir = TMP_DIR
        self._links = links
        """``host name -> HostLink`` (``get_file``/``put_file``: SFTP on the host's connection)."""
        self._subs: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(_PARALLEL)

    def url(self, host: str) -> str:
        return f"lk-relay://{service_id(self.root, host)}"

    async def serve(self, host: str) -> None:
        if host in self._subs:
            return
        await asyncio.to_thread(self.backend.check)

        async def on_msg(msg: Any) -> None:
            task = asyncio.ensure_future(self._handle(host, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._subs[host] = await self.nc.subscribe(
            f"lkrelay.{service_id(self.root, host)}", queue="lk-relay", cb=on_msg
        )

    async def close(self) -> None:
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        for task in list(self._tasks):
            task.cancel()

    # -- requests ---------------------------------------------------------------------------------------

    def _path(self, key: Any) -> str:
        if not isinstance(key, str) or not key:
            raise BadRequest(f"key {key!r} is not a store key")
        parts = key.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts) or parts[0] == self._tmp_dir:
            raise BadRequest(f"key {key!r} is not a store key (relative, no '..', not the store's own)")
        path = os.path.join(self.root, *parts)
        if os.path.commonpath([self.root, os.path.realpath(path)]) != self.root:
            raise BadRequest(f"key {key!r} leads outside the store")
        return path

    async def _handle(self, host: str, msg: Any) -> None:
        headers = dict(msg.headers or {})
        op = headers.get("op", "")
        try:
            reply_headers, data = await self._do(host, op, headers, msg.data)
        except FileNotFoundError as exc:
            reply_headers, data = {"error": f"missing: {exc}", "missing": "1"}, b""
        except BadRequest as exc:
            reply_headers, data = {"error": str(exc)}, b""
        except Exception as exc:
            log.warning("artifact relay for host %s: %s failed: %s", host, op, exc)
            reply_headers, data = {"error": f"{type(exc).__name__}: {exc}"}, b""
        if msg.reply:
            with contextlib.suppress(Exception):
                await self.nc.publish(msg.reply, data, headers=reply_headers)

    async def _do(
        self, host: str, op: str, headers: dict[str, str], data: bytes
    ) -> tuple[dict[str, str], bytes]:
        b = self.backend
        if op == "check":
            return {}, b""
        if op == "exists":
            keys = json.loads(data)
            return {}, json.dumps([os.path.isfile(self._path(k)) for k in keys]).encode()
        if op == "read":
            path = self._path(headers.get("key"))
            offset, length = int(headers.get("offset", "0")), int(headers.get("length", "0"))

            def read() -> tuple[int, bytes]:
                with open(path, "rb") as f:
                    f.seek(offset)
                    return os.fstat(f.fileno()).st_size, f.read(max(0, length))

            size, chunk = await asyncio.to_thread(read)
            return {"size": str(size)}, chunk
        if op == "write":
            key, upload = headers.get("key", ""), headers.get("upload", "")
            self._path(key)
            if not _UPLOAD_ID.match(upload):
                raise BadRequest(f"upload id {upload!r} is not 32 hex digits")
            tmp = os.path.join(self.root, self._tmp_dir, f"relay-{upload}")

            def append() -> None:
                with open(tmp, "ab") as f:
                    f.write(data)
                if headers.get("final"):
                    b._commit(tmp, key)

            try:
                await asyncio.to_thread(append)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return {}, b""
        if op == "list":
            prefix = json.loads(data)
            if prefix.strip("/"):
                self._path(prefix.strip("/"))
            return {}, json.dumps(await asyncio.to_thread(b.list, prefix)).encode()
        if op == "delete":
            keys = json.loads(data)
            for k in keys:
                self._path(k)
            await asyncio.to_thread(b.delete, keys)
            return {}, b""
        if op == "upload":
            pairs = json.loads(data)
            await self._each(pairs, lambda p: self._get(host, p[0], p[1]))
            return {}, b""
        if op == "download":
            pairs = json.loads(data)
            await self._each(pairs, lambda p: self._put(host, p[0], p[1]))
            return {}, b""
        raise BadRequest(f"unknown relay operation {op!r}")

    async def _each(self, pairs: Any, fn: Callable[[list[str]], Awaitable[None]]) -> None:
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
        ):
            raise BadRequest("expected a list of [path, key] pairs")

        async def one(pair: list[str]) -> None:
            async with self._limit:
                await fn(pair)

        await asyncio.gather(*(one(p) for p in pairs))

    async def _get(self, host: str, remote: str, key: str) -> None:
        """A host's file into the store, under ``key`` (a temp name, then renamed)."""
        self._path(key)
        if not os.path.isabs(remote):
            raise BadRequest(f"host path {remote!r} is not absolute")
        tmp = self.backend._tmp()
        try:
            await self._links(host).get_file(remote, tmp)
            await asyncio.to_thread(self.backend._commit, tmp, key)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def _put(self, host: str, key: str, remote: str) -> None:
        """A store object to the host's ``remote`` path."""
        path = self._path(key)
        if not os.path.isfile(path):
            raise FileNotFoundError(key)
        if not os.path.isabs(remote):
            raise BadRequest(f"host path {remote!r} is not absolute")
        await self._links(host).put_file(path, remote)
