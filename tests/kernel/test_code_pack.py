"""The app's folder as a code artifact: links inside it travel, links out of it are left behind."""

from __future__ import annotations

import os

from lightning_kernel._code import pack, unpack


def test_links_out_of_the_folder_are_not_packed_and_links_inside_are(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("print('app')\n")
    (app / "helpers.py").write_text("X = 1\n")
    outside = tmp_path / "dataset.bin"
    outside.write_bytes(b"data")
    (app / "data").symlink_to(outside)  # absolute: a dataset elsewhere on this machine
    (app / "up").symlink_to("../dataset.bin")  # relative, but out of the folder
    (app / "alias.py").symlink_to("helpers.py")  # inside: it travels as a link

    code = pack(str(app / "app.py"))
    root = unpack(code.data, "test-ref-links", root=str(tmp_path / "cache"))
    names = sorted(os.listdir(root))
    assert names == ["alias.py", "app.py", "helpers.py"], names
    assert os.path.islink(os.path.join(root, "alias.py"))
    with open(os.path.join(root, "alias.py")) as f:
        assert f.read() == "X = 1\n"
