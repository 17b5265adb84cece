"""The artifact store: content-addressed objects and small named JSON documents under one URL.

Layout under the store's root (``file:///abs/dir`` or ``s3://bucket/prefix``)::

    cas/<sha256[:2]>/<sha256>     immutable objects, named by the hex sha256 of their bytes
    docs/<key>                    named JSON documents (manifests pointers), overwritable

Bytes move through a ``Backend`` (``_backends``: a local folder, or S3 through s3fs); this module
owns content addressing (the same bytes are stored once), the validation of refs and keys, and
the errors users read: every failure of the store names its URL and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lightning_kernel.errors import ArtifactError, ConfigError

from ._backends import Backend, LocalBackend

_REF = re.compile(r"^[0-9a-f]{64}$")
# Relative, slash-separated segments; callers encode anything else (lit paths are base64'd).
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._@%+=,-]+$")
_CHUNK = 1 << 20
_PARTIAL = ".lk-partial-"
_R = TypeVar("_R")
_RESERVED = ("cas/", "docs/", ".lk-tmp/")


def file_digest(path: str) -> tuple[str, int]:
    """The hex sha256 and size of a local file, read in chunks (never whole into memory)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def object_key(ref: str) -> str:
    """The backend key of object ``ref``; refuses anything but a hex sha256."""
    if not isinstance(ref, str) or not _REF.match(ref):
        raise ArtifactError(f"{ref!r} is not an artifact reference (expected the 64 hex digits of a sha256)")
    return f"cas/{ref[:2]}/{ref}"


def _doc_key(key: str) -> str:
    segments = key.split("/") if isinstance(key, str) else [""]
    if not all(_KEY_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise ArtifactError(
            f"{key!r} is not a valid document key: use relative, slash-separated segments of "
            "letters, digits and ._@%+=,- (encode anything else)"
        )
    return f"docs/{key}"


def _named_key(key: str) -> str:
    segments = key.split("/") if isinstance(key, str) else [""]
    clean = all(s and s not in (".", "..") and "\\" not in s and "\0" not in s for s in segments)
    if not clean or (key + "/").startswith(_RESERVED):
        raise ArtifactError(
            f"{key!r} is not a valid file key: use relative, slash-separated names without '.', '..', "
            "empty parts or backslashes, outside the store's own cas/, docs/ and .lk-tmp/"
        )
    return key


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ArtifactStore:
    """Content-addressed objects and named JSON documents at ``url`` (``file://`` or ``s3://``).

    ``storage_options`` go to s3fs (``key``, ``secret``, ``endpoint_url`` or
    ``client_kwargs={"endpoint_url": ...}``); without an endpoint, ``LK_S3_ENDPOINT_URL``,
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` is used. The store is checked (bucket exists,
    credentials accepted) on its first use, so that opening one costs nothing.
    """

    def __init__(
        self, url: str, storage_options: dict[str, Any] | None = None, backend: Backend | None = None
    ) -> None:
        self.url = url
        parts = urlsplit(url)
        self._checked = False
        self.backend: Backend
        if backend is not None:  # a store reached another way (a worker's, through the kernel's relay)
            self.backend = backend
        elif parts.scheme in ("", "file"):
            if parts.netloc not in ("", "localhost"):
                raise ConfigError(
                    f"artifact store URL {url!r}: a file:// URL takes no host; use file:///abs/dir"
                )
            self.backend = LocalBackend(os.path.abspath(parts.path if parts.scheme else url))
        elif parts.scheme == "s3":
            if not parts.netloc:
                raise ConfigError(f"artifact store URL {url!r} names no bucket: use s3://bucket/prefix")
            from ._backends import S3Backend

            self.backend = S3Backend(url, parts.netloc, parts.path.strip("/"), storage_options)
        else:
            raise ConfigError(
                f"artifact store URL {url!r}: unsupported scheme {parts.scheme!r}; use file:///abs/dir "
                "or s3://bucket/prefix"
            )

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.backend, LocalBackend)

    def check(self) -> None:
        """Make sure the store answers; raise ``ArtifactError`` naming the URL when it does not."""
        self._call(self.backend.check, "open the store", checked=True)
        self._checked = True

    def _call(self, fn: Callable[[], _R], action: str, *, checked: bool = False) -> _R:
        if not checked and not self._checked:
            self.check()
        try:
            return fn()
        except ArtifactError:
            raise
        except FileNotFoundError as exc:
            if not self._checked:
                raise ArtifactError(
                    f"cannot {action} at {self.url}: the bucket or folder does not exist ({exc}); create it, "
                    "or pass another --artifacts / LK_ARTIFACTS"
                ) from exc
            raise
        except PermissionError as exc:
            fix = (
                "check the folder's owner and mode"
                if self.is_local
                else "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the store's credentials) and the "
                "bucket's policy"
            )
            raise ArtifactError(f"cannot {action} at {self.url}: access denied ({exc}); {fix}") from exc
        except Exception as exc:
            if not _is_io_error(exc):
                raise
            endpoint = getattr(self.backend, "endpoint", None)
            where = f"{self.url} (endpoint {endpoint})" if endpoint else self.url
            raise ArtifactError(
                f"cannot {action} at {where}: {type(exc).__name__}: {exc}; check that the endpoint is "
                "reachable (LK_S3_ENDPOINT_URL / AWS_ENDPOINT_URL) and the credentials are right"
            ) from exc

    # -- content-addressed objects -----------------------------------------------------------------

    def has(self, ref: str) -> bool:
        key = object_key(ref)
        return bool(self._call(lambda: self.backend.exists([key])[0], f"look up object {ref}"))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` once; return its ref (hex sha256)."""
        ref = hashlib.sha256(data).hexdigest()
        key = object_key(ref)
        if not self._call(lambda: self.backend.exists([key])[0], f"look up object {ref}"):
            self._call(lambda: self.backend.write(key, bytes(data)), f"write object {ref}")
        return ref

    def get_bytes(self, ref: str) -> bytes:
        """The bytes of object ``ref``, checked against their sha256.

        The check is what lets callers unpickle these bytes: whatever sits under a ref in a shared
        bucket, only the bytes that were put there under that ref come back.
        """
        key = object_key(ref)
        try:
            data = self._call(lambda: self.backend.read(key), f"read object {ref}")
        except FileNotFoundError:
            raise ArtifactError(f"object {ref} is missing from the artifact store {self.url}") from None
        if hashlib.sha256(data).hexdigest() != ref:
            raise ArtifactError(
                f"object {ref} in {self.url} is corrupt: its content has another sha256; delete it and "
                "store it again"
            )
        return data

    def put_file(self, local: str) -> tuple[str, int]:
        """Store a local file once; return ``(ref, size)``."""
        ref, size = file_digest(local)
        self.upload_blobs([(local, ref)])
        return ref, size

    def upload_blobs(
        self, pairs: Sequence[tuple[str, str]], known: Collection[str] = (), check_min_size: int = 0
    ) -> list[str]:
        """Store local files whose refs the caller computed; return the refs actually uploaded.

        A ref named twice is uploaded once. Refs in ``known`` are taken as stored (the caller read
        them from a manifest, which names only stored objects). Other refs are looked up first (in
        parallel) and skipped when present, except, on a remote store, files smaller than
        ``check_min_size`` bytes: uploading those costs about the round trip a lookup would, and
        rewriting an object with its own bytes is harmless (the key is the content's hash).
        """
        skip = set(known)
        wanted: dict[str, str] = {}
        for local, ref in pairs:
            if ref not in skip:
                wanted.setdefault(object_key(ref), local)
        if not wanted:
            return []
        unchecked: list[str] = []
        if check_min_size > 0 and not self.is_local:
            unchecked = [k for k, local in wanted.items() if os.path.getsize(local) < check_min_size]
        blind = set(unchecked)
        keys = [k for k in wanted if k not in blind]
        present = self._call(lambda: self.backend.exists(keys), "look up objects") if keys else []
        todo = [(wanted[k], k) for k in unchecked]
        todo += [(wanted[k], k) for k, there in zip(keys, present, strict=True) if not there]
        if todo:
            self._call(lambda: self.backend.upload(todo), f"upload {len(todo)} objects")
        return [k.rsplit("/", 1)[1] for _, k in todo]

    def get_file(self, ref: str, local: str) -> None:
        """Write object ``ref`` to ``local`` atomically (a temp name in the same folder, then rename)."""
        self.get_files([(ref, local)])

    def get_files(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Download many objects in parallel; each lands atomically at its local path."""
        jobs = [(object_key(ref), local) for ref, local in pairs]
        try:
            self._download(jobs, "download objects")
        except FileNotFoundError as exc:
            raise ArtifactError(f"an object is missing from the artifact store {self.url}: {exc}") from exc

    def _download(self, pairs: Sequence[tuple[str, str]], action: str) -> None:
        # Each file is written under a partial name beside its target and renamed into place, so a
        # reader (or a Work resumed after a kill) never sees half a file under the real name.
        jobs: list[tuple[str, str, str]] = []
        for key, local in pairs:
            local = os.path.abspath(local)
            head, tail = os.path.split(local)
            os.makedirs(head, exist_ok=True)
            jobs.append((key, os.path.join(head, f"{_PARTIAL}{uuid.uuid4().hex[:12]}-{tail}"), local))
        if not jobs:
            return
        try:
            self._call(lambda: self.backend.download([(k, tmp) for k, tmp, _ in jobs]), action)
            for _key, tmp, local in jobs:
                os.replace(tmp, local)
        finally:
            for _key, tmp, _local in jobs:
                _unlink_quietly(tmp)

    # -- named files (Drives) ----------------------------------------------------------------------

    def upload_named(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Upload local files under raw keys (``[(local, key)]``), in parallel, each atomically."""
        todo = [(local, _named_key(key)) for local, key in pairs]
        if todo:
            self._call(lambda: self.backend.upload(todo), f"upload {len(todo)} files")

    def download_named(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Download raw keys to local files (``[(key, local)]``); ``FileNotFoundError`` for a missing key."""
        self._download([(_named_key(key), local) for key, local in pairs], f"download {len(pairs)} files")

    def list_named(self, prefix: str = "") -> list[str]:
        """Raw keys under the folder ``prefix`` (every named file when empty), sorted."""
        folder = _named_key(prefix.strip("/")) if prefix.strip("/") else ""
        found = self._call(lambda: self.backend.list(folder), "list files")
        return sorted(k for k in found if not k.startswith(_RESERVED))

    def delete_named(self, keys: Sequence[str]) -> None:
        """Delete raw keys; a missing one is not an error."""
        names = [_named_key(k) for k in keys]
        if names:
            self._call(lambda: self.backend.delete(names), f"delete {len(names)} files")

    # -- named JSON documents ----------------------------------------------------------------------

    def write_json(self, key: str, obj: Any) -> None:
        """Write (or overwrite) the document ``key`` atomically."""
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        name = _doc_key(key)
        self._call(lambda: self.backend.write(name, data), f"write document {key!r}")

    def read_json(self, key: str) -> Any:
        """The document ``key``, or None when there is none."""
        name = _doc_key(key)
        try:
            data = self._call(lambda: self.backend.read(name), f"read document {key!r}")
        except FileNotFoundError:
            return None
        return json.loads(data)

    def list_keys(self, prefix: str = "") -> list[str]:
        """Document keys under the folder ``prefix`` (all when empty), sorted."""
        if prefix.strip("/"):
            _doc_key(prefix.strip("/"))
        found = self._call(lambda: self.backend.list("docs/" + prefix.strip("/")), "list documents")
        return sorted(k[len("docs/") :] for k in found if k.startswith("docs/"))

    def delete_key(self, key: str) -> None:
        """Delete the document ``key``; deleting a missing one is not an error."""
        name = _doc_key(key)
        self._call(lambda: self.backend.delete([name]), f"delete document {key!r}")


def _is_io_error(exc: BaseException) -> bool:
    # botocore and aiohttp errors are not OSErrors; they are recognised by module to keep them lazy.
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or module in ("botocore", "aiobotocore", "aiohttp", "s3fs")
