"""The README's two commands stay true: CI runs the README's test command, and the example exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert blocks[0].startswith("pip install") and "lightning-kernel run app examples/counter.py" in blocks[0]
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"TEST_COMMAND='(.*)'", ci).group(1)  # type: ignore[union-attr]
    assert blocks[1] == command
    assert (ROOT / "examples" / "counter.py").is_file()
