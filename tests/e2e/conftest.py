from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXE = [sys.executable, "-m", "lightning_kernel"]


class LK:
    """Runs the real ``lightning-kernel`` command against one data dir."""

    def __init__(self, tmp_path: Path, db: str | None = None) -> None:
        self.dir = tmp_path
        self.env = {**os.environ, "LK_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
        if db:
            self.env["LK_DB"] = db

    def app(self, source: str, name: str = "app.py") -> str:
        path = self.dir / name
        path.write_text(textwrap.dedent(source))
        return str(path)

    def __call__(
        self, *args: str, timeout: float = 90, check: bool | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*EXE, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
        )
        if check:
            assert proc.returncode == 0, (
                f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*EXE, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
        )

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        out = self(*args, "--json", check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def state(self, run: str = "latest", at: int | None = None) -> dict[str, Any]:
        args = ["state", run, "--json"] + (["--at", str(at)] if at is not None else [])
        return json.loads(self(*args, check=True).stdout)


@pytest.fixture
def lk(tmp_path: Path) -> LK:
    return LK(tmp_path)


@pytest.fixture
def lk_factory(tmp_path: Path) -> Callable[..., LK]:
    return lambda db=None: LK(tmp_path, db)
