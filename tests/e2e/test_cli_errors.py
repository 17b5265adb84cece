"""Errors are one clear line, not a traceback."""

from __future__ import annotations


def one_line_error(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_missing_app_file(lk):
    line = one_line_error(lk("run", "app", "nope.py"))
    assert "app file 'nope.py' does not exist" in line


def test_file_without_an_app(lk):
    path = lk.app("x = 1\n")
    assert "defines no LightningApp" in one_line_error(lk("run", "app", path))


def test_app_file_that_raises(lk):
    path = lk.app("raise RuntimeError('broken import')\n")
    assert "broken import" in one_line_error(lk("run", "app", path))


def test_unknown_run(lk):
    lk("db", "upgrade", check=True)
    for cmd in (["history", "r-missing"], ["state", "r-missing"], ["logs", "r-missing"]):
        assert "no run 'r-missing'" in one_line_error(lk(*cmd))


def test_unreachable_nats(lk):
    path = lk.app(
        "from lightning_kernel import *\nclass F(LightningFlow):\n    pass\napp = LightningApp(F())\n"
    )
    line = one_line_error(lk("run", "app", path, "--nats", "nats://127.0.0.1:1"))
    assert "cannot reach NATS at nats://127.0.0.1:1" in line


def test_unreachable_database(lk):
    path = lk.app(
        "from lightning_kernel import *\nclass F(LightningFlow):\n    pass\napp = LightningApp(F())\n"
    )
    line = one_line_error(lk("run", "app", path, "--db", "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"))
    assert "cannot reach database" in line and "127.0.0.1:1" in line and "secret" not in line


def test_debug_shows_the_traceback(lk):
    proc = lk("--debug", "run", "app", "nope.py")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
