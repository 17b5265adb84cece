"""Manifests: what a persisted Path holds, and what it never holds (half-downloaded files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from conftest import Work
from lightning_kernel.storage import ArtifactStore, Path
from lightning_kernel.storage._manifest import is_partial_download, load, scan
from lightning_kernel.storage._persist import persist_paths

# A download whose copy stops half-way (after the first MiB) until it is killed.
_SLOW_DOWNLOAD = """
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
ArtifactStore(sys.argv[1]).get_file(sys.argv[2], sys.argv[3])
print("done", flush=True)
"""


def _killed_download(store: ArtifactStore, ref: str, local: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_DOWNLOAD, store.url, ref, local], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()


def test_a_download_cut_by_a_kill_is_never_persisted(
    local_store: ArtifactStore, make_work: Callable[..., Work], tmp_path: Any
) -> None:
    ref = local_store.put_bytes(os.urandom(3 << 20))
    work = make_work(local_store, "root.deploy")
    outputs = os.path.join(work.root, "outputs")
    os.makedirs(outputs)
    with open(os.path.join(outputs, "notes.txt"), "w") as f:
        f.write("whole")
    _killed_download(local_store, ref, os.path.join(outputs, "model.ckpt"))
    left = sorted(os.listdir(outputs))
    # The kill left half an object under the partial name, and nothing under the real one.
    partial = [n for n in left if n != "notes.txt"]
    assert len(partial) == 1 and partial[0].endswith("-model.ckpt") and is_partial_download(partial[0])
    assert os.path.getsize(os.path.join(outputs, partial[0])) == 1 << 20

    with work.running():
        (record,) = persist_paths([Path("lit://outputs", origin="root.deploy")])
    manifest = load(local_store, record["manifest"])
    assert sorted(manifest["files"]) == ["notes.txt"]
    assert record["files"] == 1 and record["bytes"] == len("whole")
    # Only the whole file's bytes reached the store, besides the object and the manifest.
    assert not local_store.has(_sha256_of(os.path.join(outputs, partial[0])))


def test_the_filter_keeps_every_other_hidden_file(tmp_path: Any) -> None:
    folder = tmp_path / "root" / "data"
    folder.mkdir(parents=True)
    names = [".lk-partial-0123456789ab-x.bin", ".lk-notes", ".partial", "x.part", ".env", "a.lk-partial-"]
    for n in names:
        (folder / n).write_text(n)
    kind, files = scan(str(folder), str(tmp_path / "root"), "lit://data", "root.w") or ("", [])
    assert kind == "dir"
    assert sorted(f.rel for f in files) == sorted(names[1:])


def _sha256_of(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
