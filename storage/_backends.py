"""Where the artifact store's bytes live: a local folder, or an S3 bucket through s3fs.

A backend knows keys (``cas/ab/abcd...``, ``docs/paths/...``) and moves bytes; content addressing,
documents and error messages for users belong to ``ArtifactStore``. Both backends make every write
atomic for readers: the local one writes a temporary file in ``<root>/.lk-tmp`` and renames it into
place (one filesystem, so ``os.replace`` is atomic); S3 makes an object visible only when one
``PutObject`` or a multipart upload's ``CompleteMultipartUpload`` succeeds, so a killed writer leaves
at most an incomplete multipart upload, which no reader lists.

Durability: a rename survives the writer being killed; a power cut needs an fsync, which is not
done because the store is rewritten from the Work's files on the next persist anyway.

s3fs, aiobotocore and botocore are imported only when an ``s3://`` store is opened, so that
``import lightning_kernel.storage`` stays light in workers that never touch S3.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

TMP_DIR = ".lk-tmp"
"""Temporary files of the local backend; never a key, never listed."""

S3_CHUNK = 8 * 2**20
"""Multipart part size: files of two parts or more stream from disk instead of being read whole."""

S3_BATCH = 32
"""Files in flight at once; with ``S3_CHUNK`` it bounds the memory an upload holds (about 0.5 GB)."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def parallel_map(fn: Callable[[_T], _R], items: Sequence[_T], workers: int = 8) -> list[_R]:
    """``[fn(x) for x in items]`` on a thread pool (file copies and hashing release the GIL)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class Backend(Protocol):
    """The byte-moving seam under ``ArtifactStore``; keys are ``/``-separated and already checked."""

    url: str

    def check(self) -> None: ...

    def exists(self, keys: Sequence[str]) -> list[bool]: ...

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes) -> None: ...

    def upload(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    def download(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class LocalBackend:
    """Keys as files under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def _tmp(self) -> str:
        return os.path.join(self.root, TMP_DIR, uuid.uuid4().hex)

    def check(self) -> None:
        os.makedirs(os.path.join(self.root, TMP_DIR), exist_ok=True)

    def exists(self, keys: Sequence[str]) -> list[bool]:
        return [os.path.isfile(self._path(k)) for k in keys]

    def read(self, key: str) -> bytes:
        with open(self._path(key), "rb") as f:
            return f.read()

    def _commit(self, tmp: str, key: str) -> None:
        dest = self._path(key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(tmp, dest)

    def write(self, key: str, data: bytes) -> None:
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            self._commit(tmp, key)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def _upload_one(self, pair: tuple[str, str]) -> None:
        local, key = pair
        tmp = self._tmp()
        try:
            shutil.copyfile(local, tmp)
            self._commit(tmp, key)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def upload(self, pairs: Sequence[tuple[str, str]]) -> None:
        parallel_map(self._upload_one, pairs)

    def download(self, pairs: Sequence[tuple[str, str]]) -> None:
        parallel_map(lambda p: shutil.copyfile(self._path(p[0]), p[1]), pairs)

    def list(self, prefix: str) -> list[str]:
        top = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if os.path.isfile(top):
            return [prefix.rstrip("/")]
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath == self.root:
                dirnames[:] = [d for d in dirnames if d != TMP_DIR]
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            out.extend(name if rel == "." else f"{rel}/{name}" for name in filenames)
        return sorted(out)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            _unlink_quietly(self._path(key))
            _prune_empty_dirs(os.path.dirname(self._path(key)), self.root)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _prune_empty_dirs(directory: str, stop: str) -> None:
    # Deleted keys leave no empty folders behind, so a listing of a folder means files exist there.
    while directory.startswith(stop + os.sep):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


def s3_options(storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """s3fs options: the caller's, plus the endpoint from the environment and bounded retries.

    The endpoint comes from ``endpoint_url``, ``client_kwargs.endpoint_url``, ``LK_S3_ENDPOINT_URL``,
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, in that order. Retries are bounded so that an
    unreachable endpoint fails in about a second, not after botocore's and s3fs's retries multiply.
    """
    opts = dict(storage_options or {})
    client_kwargs = dict(opts.pop("client_kwargs", None) or {})
    endpoint = (
        opts.pop("endpoint_url", None)
        or client_kwargs.get("endpoint_url")
        or os.environ.get("LK_S3_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    opts["client_kwargs"] = client_kwargs
    config_kwargs = dict(opts.pop("config_kwargs", None) or {})
    config_kwargs.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
    config_kwargs.setdefault("connect_timeout", 5)
    opts["config_kwargs"] = config_kwargs
    # Other processes write the same bucket: a cached listing would hide their objects.
    opts.setdefault("use_listings_cache", False)
    opts.setdefault("skip_instance_cache", True)
    return opts


class S3Backend:
    """Keys as objects under ``s3://bucket/prefix``, through s3fs."""

    def __init__(self, url: str, bucket: str, prefix: str, storage_options: dict[str, Any] | None) -> None:
        import s3fs

        self.url = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        opts = s3_options(storage_options)
        self.endpoint = opts["client_kwargs"].get("endpoint_url") or "AWS's default endpoint"
        self.fs = s3fs.S3FileSystem(**opts)
        # s3fs retries connection errors itself, on top of botocore: keep the product small.
        self.fs.retries = 2
        self.chunksize = S3_CHUNK
        self.batch_size = S3_BATCH

    def _path(self, key: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _sync(self, coro: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self.fs.loop, lambda: coro)

    def check(self) -> None:
        self._sync(self.fs._call_s3("head_bucket", Bucket=self.bucket))

    async def _head(self, key: str) -> bool:
        try:
            await self.fs._call_s3(
                "head_object", Bucket=self.bucket, Key=self._path(key)[len(self.bucket) + 1 :]
            )
        except FileNotFoundError:
            return False
        return True

    def exists(self, keys: Sequence[str]) -> list[bool]:
        import asyncio

        async def run() -> list[bool]:
            limit = asyncio.Semaphore(32)

            async def one(key: str) -> bool:
                async with limit:
                    return await self._head(key)

            return list(await asyncio.gather(*(one(k) for k in keys)))

        return list(self._sync(run())) if keys else []

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def upload(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            self.fs.put(
                [p[0] for p in pairs],
                [self._path(p[1]) for p in pairs],
                chunksize=self.chunksize,
                batch_size=self.batch_size,
            )

    def download(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            self.fs.get([self._path(p[0]) for p in pairs], [p[1] for p in pairs], batch_size=self.batch_size)

    def list(self, prefix: str) -> list[str]:
        root = self._path("")
        start = self._path(prefix.rstrip("/")) if prefix.strip("/") else root
        try:
            found: Iterable[str] = self.fs.find(start)
        except FileNotFoundError:
            return []
        cut = len(root) + 1
        return sorted(p[cut:] for p in found if p.startswith(root + "/"))

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self.fs.rm([self._path(k) for k in keys])
