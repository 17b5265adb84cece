"""Drive across two components, on the run's store (lit://) and on an S3 folder (s3://)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _fixtures.s3 import S3Server
from conftest import Work
from lightning_kernel.errors import ArtifactError, KernelError, PathEscapeError
from lightning_kernel.storage import ArtifactStore, Drive

MakeWork = Callable[..., Work]


def _write(root: str, rel: str, text: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _read(root: str, rel: str) -> str:
    with open(os.path.join(root, rel)) as f:
        return f.read()


def test_put_list_get_delete_across_two_components(store: ArtifactStore, make_work: MakeWork) -> None:
    w1, w2 = make_work(store, "root.w1"), make_work(store, "root.w2")
    drive = Drive("lit://shared")
    _write(w1.root, "a.txt", "from w1")
    _write(w1.root, "data/x/1.txt", "one")
    _write(w1.root, "data/x/2.txt", "two")
    _write(w2.root, "b.txt", "from w2")
    with w1.running():
        drive.put("a.txt")
        drive.put("data")
        assert drive.list() == ["a.txt", "data"]
    with w2.running():
        drive.put("b.txt")
        assert drive.list(".") == ["a.txt", "b.txt", "data"]
        assert drive.list("data") == ["data/x"]
        assert drive.list("data/x") == ["data/x/1.txt", "data/x/2.txt"]
        assert drive.list(component_name="root.w2") == ["b.txt"]
        drive.get("a.txt")
        drive.get("data")
        with pytest.raises(FileExistsError, match="overwrite=True"):
            drive.get("a.txt")
        drive.get("a.txt", component_name="root.w1", overwrite=True)
        with pytest.raises(FileNotFoundError, match="a component deletes only its own files"):
            drive.delete("a.txt")
    assert _read(w2.root, "a.txt") == "from w1" and _read(w2.root, "data/x/2.txt") == "two"
    with w1.running():
        assert drive.list() == ["a.txt", "b.txt", "data"]  # w2's delete removed nothing
        drive.delete("a.txt")
        drive.delete("data/x")
        assert drive.list() == ["b.txt"]
        with pytest.raises(FileNotFoundError):
            drive.get("a.txt", overwrite=True)
    assert [k for k, _ in w1.events] == ["drive.put", "drive.put", "drive.deleted", "drive.deleted"]
    assert w2.kinds() == ["drive.put", "drive.get", "drive.get", "drive.get"]
    assert w1.events[1][1]["files"] == 2


def test_duplicates_are_refused_unless_allowed(local_store: ArtifactStore, make_work: MakeWork) -> None:
    w1, w2 = make_work(local_store, "root.w1"), make_work(local_store, "root.w2")
    for w in (w1, w2):
        _write(w.root, "a.txt", w.name)
    with w1.running():
        Drive("lit://d").put("a.txt")
    with w2.running():
        with pytest.raises(ArtifactError, match=r"already in the Drive, put by root\.w1"):
            Drive("lit://d").put("a.txt")
        Drive("lit://d", allow_duplicates=True).put("a.txt")
        Drive("lit://d").get("a.txt", overwrite=True)  # its own copy first
    assert _read(w2.root, "a.txt") == "root.w2"


def test_get_waits_for_a_file_another_component_puts(local_store: ArtifactStore, make_work: MakeWork) -> None:
    w1, w2 = make_work(local_store, "root.w1"), make_work(local_store, "root.w2")
    _write(w1.root, "late.txt", "here at last")

    def put_later() -> None:
        time.sleep(0.3)
        with w1.running():
            Drive("lit://d").put("late.txt")

    with w2.running():
        with pytest.raises(FileNotFoundError, match=r"after waiting 0\.05 s"):
            Drive("lit://d").get("late.txt", timeout=0.05)
        thread = threading.Thread(target=put_later)
        thread.start()
        Drive("lit://d").get("late.txt", timeout=10)
        thread.join()
    assert _read(w2.root, "late.txt") == "here at last"


def test_s3_drive_is_a_folder_of_a_bucket(s3_server: S3Server, s3_bucket: str, tmp_path: Any) -> None:
    import s3fs

    opts = s3_server.storage_options()
    w1_root, w2_root = tmp_path / "w1", tmp_path / "w2"
    _write(str(w1_root), "model/weights.bin", "w")
    d1 = Drive(
        f"s3://{s3_bucket}/team", component_name="root.w1", root_folder=str(w1_root), storage_options=opts
    )
    d1.put("model")
    fs = s3fs.S3FileSystem(**opts)  # type: ignore[arg-type]
    assert fs.find(s3_bucket) == [f"{s3_bucket}/team/root.w1/model/weights.bin"]
    d2 = Drive(
        f"s3://{s3_bucket}/team", component_name="root.w2", root_folder=str(w2_root), storage_options=opts
    )
    assert d2.list() == ["model"]
    d2.get("model/weights.bin")
    assert _read(str(w2_root), "model/weights.bin") == "w"
    with pytest.raises(FileNotFoundError):
        d2.delete("model")
    d1.delete("model")
    assert d2.list() == []


def test_json_form(local_store: ArtifactStore, make_work: MakeWork) -> None:
    d = Drive("lit://shared", allow_duplicates=True)
    back = Drive.from_dict(d.to_dict())
    assert back.id == "lit://shared" and back.allow_duplicates
    assert d.to_dict()["type"] == "__drive__"


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b"])
def test_drive_paths_cannot_escape(local_store: ArtifactStore, make_work: MakeWork, bad: str) -> None:
    with make_work(local_store, "root.w1").running(), pytest.raises(PathEscapeError):
        Drive("lit://d").put(bad)


def test_drive_errors() -> None:
    with pytest.raises(ArtifactError, match="unknown protocol"):
        Drive("gs://bucket")
    with pytest.raises(ArtifactError, match="one word"):
        Drive("lit://a/b")
    with pytest.raises(KernelError, match=r"can only be called inside a LightningWork's run\(\)"):
        Drive("lit://d").list()
