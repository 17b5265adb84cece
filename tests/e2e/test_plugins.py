"""Executor plugins: found through entry points; a broken one is reported by name, the rest load."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from lightning_kernel._plugins import load_executors
from lightning_kernel.errors import ExecutorError


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Installs (on sys.path) distributions whose entry points name plugins, good and broken."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "lk_good_plugin.py").write_text(
        textwrap.dedent("""
        from lightning_kernel.executors import hookimpl
        from lightning_kernel.executors.local import LocalExecutor

        class Twin(LocalExecutor):
            name = "twin"

        @hookimpl
        def lk_executors():
            return [Twin()]
    """)
    )
    (site / "lk_broken_plugin.py").write_text("raise ImportError('missing dependency: foo')\n")
    (site / "lk_typo_plugin.py").write_text(
        textwrap.dedent("""
        from lightning_kernel.executors import hookimpl

        @hookimpl
        def lk_executor():  # misspelled
            return []
    """)
    )
    dist = site / "lk_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lk-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lightning_kernel.executors]\ngood = lk_good_plugin\nbroken = lk_broken_plugin\ntypo = lk_typo_plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in ("lk_good_plugin", "lk_broken_plugin", "lk_typo_plugin"):
        sys.modules.pop(name, None)


def test_broken_plugins_are_reported_by_name_and_others_load(plugin_dist):
    executors = load_executors()
    assert {"local", "twin"} <= set(executors.by_name)
    assert "missing dependency: foo" in executors.broken["broken"]
    assert "lk_executor" in executors.broken["typo"]
    with pytest.raises(ExecutorError, match=r"no executor named 'nope'.*broken"):
        executors.get("nope")


def test_local_executor_is_registered_through_the_entry_point():
    assert "local" in load_executors().by_name
    assert Path(sys.modules["lightning_kernel.executors.local"].__file__ or "").name == "__init__.py"


def test_a_plugin_that_takes_a_built_in_name_is_reported_naming_both(tmp_path, monkeypatch):
    site = tmp_path / "site2"
    site.mkdir()
    (site / "lk_impostor.py").write_text(
        textwrap.dedent("""
        from lightning_kernel.executors import hookimpl
        from lightning_kernel.executors.local import LocalExecutor

        class Impostor(LocalExecutor):
            name = "local"

        @hookimpl
        def lk_executors(config):
            return [Impostor()]
    """)
    )
    dist = site / "lk_impostor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lk-impostor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lightning_kernel.executors]\nimpostor = lk_impostor\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        executors = load_executors()
        why = executors.broken["impostor"]
        assert (
            "'impostor' (lk_impostor)" in why
            and "built-in executor of lightning_kernel.executors.local" in why
        )
        from lightning_kernel.executors.local import LocalExecutor

        assert type(executors.get("local")) is LocalExecutor, "the built-in keeps its name"
    finally:
        sys.modules.pop("lk_impostor", None)
