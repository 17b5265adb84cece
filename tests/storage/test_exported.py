"""The public surface of lightning_kernel.storage, pinned: a change here is a change for users."""

from __future__ import annotations

import inspect

import lightning_kernel.storage as storage


def test_exported_names() -> None:
    assert storage.__all__ == ["ArtifactStore", "Drive", "Mount", "Path", "Payload", "StorageContext"]
    assert all(
        getattr(storage, name).__module__.startswith("lightning_kernel.storage._") for name in storage.__all__
    )


def test_lightning_app_signatures() -> None:
    drive = storage.Drive
    assert list(inspect.signature(drive.put).parameters) == ["self", "path"]
    assert list(inspect.signature(drive.get).parameters) == [
        "self",
        "path",
        "component_name",
        "timeout",
        "overwrite",
    ]
    assert list(inspect.signature(drive.list).parameters) == ["self", "path", "component_name"]
    assert list(inspect.signature(drive.delete).parameters) == ["self", "path"]
    assert list(inspect.signature(storage.Path.get).parameters) == ["self", "overwrite"]
    for name in ("exists_local", "exists_remote", "to_dict", "from_dict", "origin_name"):
        assert hasattr(storage.Path, name), name
    assert hasattr(storage.Payload, "value") and hasattr(storage.Payload, "save")
