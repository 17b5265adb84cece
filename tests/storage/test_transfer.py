"""Paths across Works, on the local store and on S3: persist, transfer, get, exists, restore."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Work
from lightning_kernel.storage import ArtifactStore, Path, StorageContext
from lightning_kernel.storage._context import using
from lightning_kernel.storage._persist import persist_paths, restore_paths, transfer_inputs

MakeWork = Callable[..., Work]


def _write(root: str, rel: str, data: bytes) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _read(root: str, rel: str) -> bytes:
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


def _checkpoints(train: Work) -> Path:
    _write(train.root, "outputs/checkpoints/epoch=1.ckpt", b"one" * 100)
    _write(train.root, "outputs/checkpoints/epoch=2.ckpt", b"two" * 100)
    _write(train.root, "outputs/checkpoints/sub/last.json", b'{"epoch": 2}')
    return Path("lit://outputs/checkpoints", origin="root.train")


def test_directory_moves_from_one_work_to_the_next(store: ArtifactStore, make_work: MakeWork) -> None:
    train, deploy = make_work(store, "root.train"), make_work(store, "root.deploy")
    ckpt = _checkpoints(train)
    with train.running():
        (persisted,) = persist_paths([ckpt, Path("lit://never/written", origin="root.train")])
    assert persisted["path"] == "lit://outputs/checkpoints" and persisted["kind"] == "dir"
    assert (persisted["files"], persisted["bytes"], persisted["uploaded_files"]) == (3, 612, 3)
    assert {s["name"]: s["sha256"] for s in persisted["sample"]}["epoch=1.ckpt"] == hashlib.sha256(
        b"one" * 100
    ).hexdigest()
    assert train.events == [("path.persisted", persisted)]

    with deploy.running():
        (moved,) = transfer_inputs([ckpt])
        assert sorted(os.listdir(ckpt)) == ["epoch=1.ckpt", "epoch=2.ckpt", "sub"]
    assert _read(deploy.root, "outputs/checkpoints/sub/last.json") == b'{"epoch": 2}'
    assert moved["manifest"] == persisted["manifest"] and moved["origin"] == "root.train"
    assert (moved["files"], moved["downloaded_files"], moved["downloaded_bytes"]) == (3, 3, 612)
    assert deploy.kinds() == ["path.transferred"]


def test_file_path_and_a_file_inside_a_persisted_folder(store: ArtifactStore, make_work: MakeWork) -> None:
    train, deploy = make_work(store, "root.train"), make_work(store, "root.deploy")
    ckpt = _checkpoints(train)
    _write(train.root, "model.pt", b"model bytes")
    model = Path("lit://model.pt", origin="root.train")
    with train.running():
        persist_paths([ckpt, model])
    with deploy.running():
        records = transfer_inputs([model, ckpt / "epoch=2.ckpt", ckpt / "sub"])
        assert [r["kind"] for r in records] == ["file", "file", "dir"]
        assert model.read_bytes() == b"model bytes"
        assert (ckpt / "epoch=2.ckpt").read_bytes() == b"two" * 100
        assert not (ckpt / "epoch=1.ckpt").exists()  # only what was asked for
        assert (ckpt / "sub" / "last.json").exists()


def test_transfer_replaces_local_copies_and_skips_what_the_origin_lacks(
    store: ArtifactStore, make_work: MakeWork
) -> None:
    train, deploy = make_work(store, "root.train"), make_work(store, "root.deploy")
    ckpt = _checkpoints(train)
    with train.running():
        persist_paths([ckpt])
    _write(deploy.root, "outputs/checkpoints/epoch=1.ckpt", b"stale")
    _write(deploy.root, "outputs/checkpoints/epoch=2.ckpt", b"two" * 100)  # already up to date
    _write(deploy.root, "outputs/checkpoints/mine.txt", b"the consumer's own file")
    with deploy.running():
        (moved,) = transfer_inputs([ckpt, Path("lit://nothing/here", origin="root.train")])
    assert moved["downloaded_files"] == 2  # the stale file and the missing one
    assert _read(deploy.root, "outputs/checkpoints/epoch=1.ckpt") == b"one" * 100
    assert _read(deploy.root, "outputs/checkpoints/mine.txt") == b"the consumer's own file"
    assert not os.path.exists(os.path.join(deploy.root, "nothing"))


def test_get_overwrite_and_file_not_found(store: ArtifactStore, make_work: MakeWork) -> None:
    train, deploy = make_work(store, "root.train"), make_work(store, "root.deploy")
    ckpt = _checkpoints(train)
    with train.running():
        persist_paths([ckpt])
    with deploy.running():
        assert not ckpt.exists_local() and ckpt.exists_remote()
        ckpt.get()
        assert ckpt.exists_local() and (ckpt / "epoch=1.ckpt").read_bytes() == b"one" * 100
        with pytest.raises(FileExistsError, match="overwrite=True"):
            ckpt.get()
        (ckpt / "epoch=1.ckpt").write_bytes(b"changed here")
        ckpt.get(overwrite=True)
        ckpt.get(overwrite=True)  # every call transfers
        assert (ckpt / "epoch=1.ckpt").read_bytes() == b"one" * 100
        missing = Path("lit://outputs/nope", origin="root.train")
        assert not missing.exists_remote()
        with pytest.raises(FileNotFoundError, match=r"lit://outputs/nope.*root\.train"):
            missing.get()
        stranger = Path("lit://outputs/checkpoints", origin="root.never_ran")
        assert not stranger.exists_remote()
    got = [b["downloaded_files"] for k, b in deploy.events if k == "path.transferred"]
    assert got == [3, 3, 3]


def test_a_running_origin_is_asked_to_persist(store: ArtifactStore, make_work: MakeWork) -> None:
    """The runtime's wait_persisted is event-driven: the consumer asks, the origin persists, then the
    consumer reads the record it was handed. Here the "origin" persists when asked."""
    train = make_work(store, "root.train")
    ckpt = _checkpoints(train)
    asked: list[tuple[str, str, float | None]] = []

    def wait_persisted(origin: str, lit: str, timeout: float | None) -> dict[str, Any] | None:
        asked.append((origin, lit, timeout))
        with train.running():
            records = persist_paths([ckpt])
        return records[0]

    folder = make_work(store, "root.deploy").root
    ctx = StorageContext(store, "run1", "root.deploy", folder, wait_persisted=wait_persisted)
    with using(ctx):
        (ckpt / "epoch=2.ckpt").get()
    assert asked == [("root.train", "lit://outputs/checkpoints/epoch=2.ckpt", None)]
    assert _read(folder, "outputs/checkpoints/epoch=2.ckpt") == b"two" * 100


def test_persisting_again_uploads_only_what_changed(store: ArtifactStore, make_work: MakeWork) -> None:
    train = make_work(store, "root.train")
    ckpt = _checkpoints(train)
    with train.running():
        first = persist_paths([ckpt])[0]
        again = persist_paths([ckpt])[0]
        _write(train.root, "outputs/checkpoints/epoch=3.ckpt", b"three")
        third = persist_paths([ckpt])[0]
    assert again["uploaded_files"] == 0 and again["manifest"] == first["manifest"]
    assert (third["files"], third["uploaded_files"], third["uploaded_bytes"]) == (4, 1, 5)


def test_resume_restores_own_paths_into_a_fresh_root(store: ArtifactStore, make_work: MakeWork) -> None:
    """A Work interrupted on one host resumes on another: its checkpoint is there before run()."""

    def run(work: Work, epochs: int) -> int:
        # user code: continue from the last checkpoint if there is one
        ckpt_dir = Path("lit://outputs/checkpoints", origin=work.name)
        os.makedirs(ckpt_dir, exist_ok=True)
        done = sorted(int(p.stem.split("=")[1]) for p in ckpt_dir.iterdir())
        start = done[-1] + 1 if done else 1
        for epoch in range(start, epochs + 1):
            (ckpt_dir / f"epoch={epoch}.ckpt").write_text(str(epoch))
        return start

    first = make_work(store, "root.train")
    with first.running():
        assert run(first, 2) == 1
        persist_paths([Path("lit://outputs/checkpoints", origin="root.train")])
    second = make_work(store, "root.train")  # same Work, new machine: empty root
    assert os.listdir(second.root) == []
    with second.running():
        (restored,) = restore_paths([Path("lit://outputs/checkpoints", origin="root.train")])
        assert run(second, 4) == 3
    assert restored["downloaded_files"] == 2 and second.kinds() == ["path.restored"]
    assert sorted(os.listdir(os.path.join(second.root, "outputs", "checkpoints"))) == [
        f"epoch={i}.ckpt" for i in range(1, 5)
    ]


def test_restore_keeps_newer_local_files(local_store: ArtifactStore, make_work: MakeWork) -> None:
    """Resumed on the same machine after a kill, the files on disk are newer than the persisted ones."""
    work = make_work(local_store, "root.train")
    ckpt = _checkpoints(work)
    with work.running():
        persist_paths([ckpt])
        _write(work.root, "outputs/checkpoints/epoch=2.ckpt", b"written after the last persist")
        os.remove(os.path.join(work.root, "outputs/checkpoints/epoch=1.ckpt"))
        (restored,) = restore_paths([ckpt])
    assert restored["downloaded_files"] == 1
    assert _read(work.root, "outputs/checkpoints/epoch=2.ckpt") == b"written after the last persist"
    assert _read(work.root, "outputs/checkpoints/epoch=1.ckpt") == b"one" * 100


def test_persist_keeps_the_last_copy_of_a_path_missing_on_disk(
    local_store: ArtifactStore, make_work: MakeWork
) -> None:
    work = make_work(local_store, "root.train")
    ckpt = _checkpoints(work)
    with work.running():
        persist_paths([ckpt])
    fresh = make_work(local_store, "root.train")  # stopped before it restored anything
    with fresh.running():
        assert persist_paths([ckpt]) == []
    with make_work(local_store, "root.train").running():
        (restored,) = restore_paths([ckpt])
    assert restored["files"] == 3


def test_only_own_paths_are_persisted_and_restored(local_store: ArtifactStore, make_work: MakeWork) -> None:
    deploy = make_work(local_store, "root.deploy")
    _write(deploy.root, "outputs/checkpoints/x", b"a copy of train's file")
    with deploy.running():
        assert persist_paths([Path("lit://outputs/checkpoints", origin="root.train")]) == []
        assert restore_paths([Path("lit://outputs/checkpoints", origin="root.train")]) == []
    assert local_store.list_keys("") == []


def test_the_issue_example(
    store: ArtifactStore, make_work: MakeWork, capsys: pytest.CaptureFixture[str]
) -> None:
    """ModelTraining saves a torch checkpoint in lit://outputs/checkpoints; ModelDeploy lists it."""
    torch = pytest.importorskip("torch")
    train, deploy = make_work(store, "root.train"), make_work(store, "root.deploy")
    checkpoint_dir = Path("lit://outputs/checkpoints", origin="root.train")  # as the runtime builds it
    with train.running():
        os.makedirs(checkpoint_dir, exist_ok=True)
        torch.save(torch.tensor([0, 1, 2, 3, 4]), os.path.join(checkpoint_dir, "checkpoint_1.ckpt"))
        persist_paths([checkpoint_dir])
    with deploy.running():
        arg = Path.from_dict(checkpoint_dir.to_dict())  # what run(checkpoint_dir=...) receives
        transfer_inputs([arg])
        print(sorted(os.listdir(arg)))
        loaded = torch.load(os.path.join(arg, "checkpoint_1.ckpt"))
    assert capsys.readouterr().out.strip() == "['checkpoint_1.ckpt']"
    assert loaded.tolist() == [0, 1, 2, 3, 4]
