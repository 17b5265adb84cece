"""The web UI's tests drive a real browser: Playwright with Debian's chromium (`apt-get install
chromium`; Playwright's own browser download is not used). One browser for the session.

Without chromium (or the `playwright` package) they skip, saying so, except under CI, where they
must run. Screenshots of each page go to LK_UI_ARTIFACTS (default ``build/ui-screenshots``), and
the folder is printed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("LK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("LK_UI_ARTIFACTS") or Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
)


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set LK_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the web UI's tests must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"web UI screenshots: {ARTIFACTS}")
