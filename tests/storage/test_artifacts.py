"""The artifact store on a local folder and on S3: content addressing, documents, atomicity, errors."""

from __future__ import annotations

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from _fixtures.s3 import S3Server
from lightning_kernel.errors import ArtifactError, KernelError
from lightning_kernel.storage import ArtifactStore


def _blobs(store: ArtifactStore) -> list[str]:
    return [k for k in store.backend.list("cas")]  # type: ignore[attr-defined]


def test_same_bytes_are_stored_once(store: ArtifactStore, tmp_path: Any) -> None:
    ref = store.put_bytes(b"checkpoint")
    assert ref == hashlib.sha256(b"checkpoint").hexdigest()
    assert store.put_bytes(b"checkpoint") == ref
    f = tmp_path / "same.bin"
    f.write_bytes(b"checkpoint")
    assert store.put_file(str(f)) == (ref, len(b"checkpoint"))
    assert _blobs(store) == [f"cas/{ref[:2]}/{ref}"]
    assert store.has(ref)
    assert store.get_bytes(ref) == b"checkpoint"
    assert not store.has(hashlib.sha256(b"other").hexdigest())


def test_files_round_trip_in_parallel(store: ArtifactStore, tmp_path: Any) -> None:
    files = []
    for i in range(12):
        f = tmp_path / "in" / f"f{i}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(os.urandom(1000 + i) if i % 3 else b"dup")  # four copies of one content
        files.append(str(f))
    refs = [store.put_file(f)[0] for f in files[:1]] + [r for r, _ in _put_all(store, files[1:])]
    assert len(_blobs(store)) == len(set(refs)) == 9
    out = [str(tmp_path / "out" / "deep" / f"g{i}") for i in range(len(files))]
    store.get_files(list(zip(refs, out, strict=True)))
    for a, b in zip(files, out, strict=True):
        assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()
    assert not [n for n in os.listdir(tmp_path / "out" / "deep") if not n.startswith("g")]


def _put_all(store: ArtifactStore, files: list[str]) -> list[tuple[str, int]]:
    from lightning_kernel.storage._artifacts import file_digest

    digests = [file_digest(f) for f in files]
    store.upload_blobs([(f, r) for f, (r, _) in zip(files, digests, strict=True)])
    return digests


def test_json_documents(store: ArtifactStore) -> None:
    assert store.read_json("paths/run1/root.w/abc") is None
    store.write_json("paths/run1/root.w/abc", {"manifest": "x", "n": 1})
    store.write_json("paths/run1/root.w/abc", {"manifest": "y", "n": 2})
    store.write_json("paths/run1/root.v/def", [1, 2])
    assert store.read_json("paths/run1/root.w/abc") == {"manifest": "y", "n": 2}
    assert store.list_keys("paths/run1") == ["paths/run1/root.v/def", "paths/run1/root.w/abc"]
    assert store.list_keys("paths/run1/root.w") == ["paths/run1/root.w/abc"]
    assert store.list_keys("paths/run2") == []
    store.delete_key("paths/run1/root.w/abc")
    store.delete_key("paths/run1/root.w/abc")  # deleting twice is fine
    assert store.list_keys("paths") == ["paths/run1/root.v/def"]


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", ""])
def test_bad_keys_and_refs_are_refused(local_store: ArtifactStore, key: str) -> None:
    with pytest.raises(ArtifactError, match="key"):
        local_store.write_json(key, {})
    with pytest.raises(ArtifactError, match="sha256"):
        local_store.get_bytes("../../etc/passwd")


def test_missing_blob_names_ref_and_store(store: ArtifactStore) -> None:
    ref = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactError) as err:
        store.get_bytes(ref)
    assert ref in str(err.value) and store.url in str(err.value)


def test_import_does_not_load_s3_libraries() -> None:
    code = (
        "import sys, lightning_kernel.storage; heavy = ('s3fs', 'boto3', 'botocore', 'aiobotocore'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- atomic writes: a writer killed mid-upload leaves nothing visible ---------------------------------

_SLOW_LOCAL_WRITER = """
import shutil, sys, time
from lightning_kernel.storage import ArtifactStore

def slow_copy(src, dst, *a, **k):
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(f.read(1 << 20)); out.flush()
        print("writing", flush=True)
        time.sleep(60)
        out.write(f.read())
    return dst

shutil.copyfile = slow_copy
store = ArtifactStore(sys.argv[1])
store.put_file(sys.argv[2])
print("done", flush=True)
"""


def test_local_writer_killed_mid_upload_leaves_no_object(tmp_path: Any) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    url = f"file://{tmp_path}/artifacts"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_LOCAL_WRITER, url, str(big)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    store = ArtifactStore(url)
    ref = hashlib.sha256(big.read_bytes()).hexdigest()
    assert not store.has(ref)
    assert store.backend.list("") == []  # type: ignore[attr-defined]
    assert store.put_file(str(big))[0] == ref and store.get_bytes(ref) == big.read_bytes()


_MULTIPART_WRITER = """
import sys
from lightning_kernel.storage import _backends
from lightning_kernel.storage import ArtifactStore

_backends.S3_CHUNK = 5 * 2**20  # the smallest part S3 allows: many parts, a long upload
store = ArtifactStore(sys.argv[1], {"endpoint_url": sys.argv[2], "key": "testing", "secret": "testing"})
store.put_file(sys.argv[3])
print("done", flush=True)
"""


def test_s3_writer_killed_mid_multipart_upload_leaves_no_object(
    s3_server: S3Server, s3_bucket: str, tmp_path: Any
) -> None:
    import s3fs

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(48 << 20))
    url = f"s3://{s3_bucket}/lk"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MULTIPART_WRITER, url, s3_server.endpoint_url, str(big)],
        stdout=subprocess.PIPE,
    )
    fs = s3fs.S3FileSystem(**s3_server.storage_options())  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    uploads: list[Any] = []
    while not uploads and time.monotonic() < deadline and proc.poll() is None:
        uploads = fs.call_s3("list_multipart_uploads", Bucket=s3_bucket).get("Uploads", [])
        time.sleep(0.01)
    assert uploads, "the writer never started a multipart upload"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    store = ArtifactStore(url, s3_server.storage_options())
    ref = hashlib.sha256(big.read_bytes()).hexdigest()
    assert uploads[0]["Key"] == f"lk/cas/{ref[:2]}/{ref}"
    assert not store.has(ref)
    assert fs.find(s3_bucket) == []


# -- errors name the URL and what to do ---------------------------------------------------------------


def test_missing_bucket(s3_server: S3Server) -> None:
    store = ArtifactStore("s3://no-such-bucket-lk/prefix", s3_server.storage_options())
    with pytest.raises(ArtifactError) as err:
        store.put_bytes(b"x")
    assert "s3://no-such-bucket-lk/prefix" in str(err.value)
    assert "does not exist" in str(err.value)


def test_bad_credentials(s3_auth_server: S3Server) -> None:
    opts = dict(s3_auth_server.storage_options(), key="AKIAWRONGKEY", secret="wrong")
    store = ArtifactStore("s3://some-bucket/prefix", opts)
    with pytest.raises(ArtifactError) as err:
        store.read_json("paths/x")
    assert "s3://some-bucket/prefix" in str(err.value)
    assert "access denied" in str(err.value).lower() or "credentials" in str(err.value).lower()


def test_unreachable_endpoint() -> None:
    from _fixtures._ports import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    store = ArtifactStore("s3://bucket/prefix", {"endpoint_url": endpoint, "key": "k", "secret": "s"})
    started = time.monotonic()
    with pytest.raises(ArtifactError) as err:
        store.write_json("a/b", {})
    assert "s3://bucket/prefix" in str(err.value) and endpoint in str(err.value)
    assert time.monotonic() - started < 15


def test_unsupported_url() -> None:
    with pytest.raises(KernelError, match="gs://bucket"):
        ArtifactStore("gs://bucket/x")


def test_unwritable_local_store(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = ArtifactStore(f"file://{blocker}/artifacts")
    with pytest.raises(ArtifactError) as err:
        store.put_bytes(b"x")
    assert str(blocker) in str(err.value)


def test_corrupt_object_is_refused(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"the real bytes")
    store.backend.write(f"cas/{ref[:2]}/{ref}", b"something else")  # type: ignore[attr-defined]
    with pytest.raises(ArtifactError, match="corrupt") as err:
        store.get_bytes(ref)
    assert ref in str(err.value)
