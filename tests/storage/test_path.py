"""Path as a drop-in pathlib.Path: lit:// strings, origin, JSON form, pickling, confinement."""

from __future__ import annotations

import os
import pathlib
import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
from conftest import Work
from lightning_kernel.errors import KernelError, PathEscapeError
from lightning_kernel.storage import ArtifactStore, Path
from lightning_kernel.storage._confine import is_lit_str
from lightning_kernel.storage._path import is_path_dict
from lightning_kernel.storage._persist import find_paths, persist_paths, transfer_inputs


def test_lit_string_is_a_relative_pathlib_path() -> None:
    p = Path("lit://outputs/checkpoints")
    assert isinstance(p, pathlib.Path)
    assert str(p) == os.fspath(p) == "outputs/checkpoints"
    assert os.path.join(p, "a.ckpt") == "outputs/checkpoints/a.ckpt"
    assert p.name == "checkpoints" and p.suffix == ""
    assert p == pathlib.Path("outputs/checkpoints")
    assert Path("outputs/checkpoints") == p
    assert repr(p) == "Path('lit://outputs/checkpoints')"
    assert is_lit_str("lit://x") and not is_lit_str("outputs/x") and not is_lit_str(3)


def test_works_with_os_and_pathlib_in_the_work_root(
    local_store: ArtifactStore, make_work: Callable[..., Work]
) -> None:
    work = make_work(local_store, "root.train")
    with work.running():
        p = Path("lit://outputs/checkpoints")
        os.makedirs(p, exist_ok=True)
        (p / "a.ckpt").write_bytes(b"weights")
        with open(os.path.join(p, "b.ckpt"), "w") as f:
            f.write("more")
        assert sorted(os.listdir(p)) == ["a.ckpt", "b.ckpt"]
        assert sorted(x.name for x in p.iterdir()) == ["a.ckpt", "b.ckpt"]
        assert p.exists_local() and not (p / "c.ckpt").exists_local()
    assert os.path.isfile(os.path.join(work.root, "outputs", "checkpoints", "a.ckpt"))


def test_derived_paths_keep_the_origin() -> None:
    p = Path("lit://outputs/ckpt", origin="root.train")
    derived = [
        p / "a.ckpt",
        p.joinpath("x", "y"),
        p.parent,
        p.with_name("other"),
        p.with_suffix(".d"),
        (p / "a.ckpt").with_stem("b"),
    ]
    for d in derived:
        assert isinstance(d, Path) and d.origin_name == "root.train", repr(d)
    assert (p / "a.ckpt").to_dict() == {
        "type": "__path__",
        "path": "lit://outputs/ckpt/a.ckpt",
        "origin": "root.train",
    }
    assert Path(p).origin_name == "root.train"
    assert Path(p, origin="root.other").origin_name == "root.other"
    assert type(p.resolve()) is not Path and p.absolute().is_absolute()


def test_json_form_and_pickling() -> None:
    p = Path("lit://outputs/ckpt")
    assert p.origin_name == "" and p.to_dict()["origin"] is None
    p._attach_origin("root.train")
    p._attach_origin("root.someone_else")  # the first origin sticks
    d = p.to_dict()
    assert d == {"type": "__path__", "path": "lit://outputs/ckpt", "origin": "root.train"}
    assert is_path_dict(d) and not is_path_dict({"type": "__path__", "path": "outputs"})
    back = Path.from_dict(d)
    assert back == p and back.origin_name == "root.train"
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        again = loads(dumps(p))
        assert isinstance(again, Path) and again == p and again.origin_name == "root.train"


def test_find_paths_in_arguments() -> None:
    a = Path("lit://a", origin="root.x")
    found = find_paths(
        [a, {"k": (Path("lit://b", origin="root.y"), a)}],
        {"type": "__path__", "path": "lit://c", "origin": "root.z"},
        "lit://not-a-path-object",
    )
    assert sorted((p.origin_name, str(p)) for p in found) == [
        ("root.x", "a"),
        ("root.y", "b"),
        ("root.z", "c"),
    ]


# -- confinement ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["lit://../secrets", "lit://a/../../b", "lit:///etc/passwd", "/etc/passwd"])
def test_escapes_are_refused_at_creation(bad: str) -> None:
    with pytest.raises(PathEscapeError) as err:
        Path(bad)
    assert repr(bad) in str(err.value) or bad in str(err.value)


def test_escape_refusal_names_the_work(local_store: ArtifactStore, make_work: Callable[..., Work]) -> None:
    with make_work(local_store, "root.train").running(), pytest.raises(PathEscapeError, match=r"root\.train"):
        Path("lit://../x")


def test_derived_escape_is_refused_before_it_is_stored() -> None:
    p = Path("lit://outputs") / ".." / ".." / "x"
    with pytest.raises(PathEscapeError, match=r"\.\."):
        p.to_dict()


def test_symlink_out_of_the_root_is_refused(
    local_store: ArtifactStore, make_work: Callable[..., Work], tmp_path: Any
) -> None:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("private key")
    work = make_work(local_store, "root.train")
    os.makedirs(os.path.join(work.root, "outputs"))
    os.symlink(secret, os.path.join(work.root, "outputs", "stolen"))
    os.symlink(secret.parent, os.path.join(work.root, "linkdir"))
    with work.running():
        for p in (Path("lit://outputs", origin="root.train"), Path("lit://linkdir", origin="root.train")):
            with pytest.raises(PathEscapeError, match="symlink"):
                persist_paths([p])
        with pytest.raises(PathEscapeError, match="symlink"):
            Path("lit://linkdir/id_rsa").exists_local()
    assert local_store.list_keys("") == []  # nothing was uploaded


def test_symlink_inside_the_root_is_followed(
    local_store: ArtifactStore, make_work: Callable[..., Work]
) -> None:
    work = make_work(local_store, "root.train")
    os.makedirs(os.path.join(work.root, "data", "real"))
    with open(os.path.join(work.root, "data", "real", "f.txt"), "w") as f:
        f.write("ok")
    os.symlink(os.path.join(work.root, "data", "real"), os.path.join(work.root, "data", "alias"))
    with work.running():
        (record,) = persist_paths([Path("lit://data", origin="root.train")])
    assert record["files"] == 2 and record["uploaded_files"] == 1  # same bytes, stored once


def test_transfer_refuses_a_symlinked_destination(
    local_store: ArtifactStore, make_work: Callable[..., Work], tmp_path: Any
) -> None:
    train, deploy = make_work(local_store, "root.train"), make_work(local_store, "root.deploy")
    os.makedirs(os.path.join(train.root, "outputs"))
    with open(os.path.join(train.root, "outputs", "m.ckpt"), "w") as f:
        f.write("weights")
    with train.running():
        persist_paths([Path("lit://outputs", origin="root.train")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, os.path.join(deploy.root, "outputs"))
    with deploy.running(), pytest.raises(PathEscapeError):
        transfer_inputs([Path("lit://outputs", origin="root.train")])
    assert list(elsewhere.iterdir()) == []


# -- only inside a Work's run() ---------------------------------------------------------------------


@pytest.mark.parametrize("call", ["get", "exists_local", "exists_remote"])
def test_outside_a_work_is_a_clear_error(call: str) -> None:
    p = Path("lit://outputs", origin="root.train")
    with pytest.raises(KernelError, match=r"can only be called inside a LightningWork's run\(\)") as err:
        getattr(p, call)()
    assert f"Path.{call}()" in str(err.value)
