"""Record the golden histories: ``python tests/golden/record.py`` runs each app here with the real
``lightning-kernel`` and writes ``<app>.history.jsonl`` (``history --json``) beside it. Re-record only
when a change of the kernel is meant to change what flows emit, and say so in the commit."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = ["chain", "loop", "failing"]


def main() -> None:
    for name in sys.argv[1:] or APPS:
        with tempfile.TemporaryDirectory() as tmp:
            app = os.path.join(tmp, f"{name}.py")
            with open(os.path.join(HERE, f"{name}.py")) as src, open(app, "w") as dst:
                dst.write(src.read())
            exe = [sys.executable, "-m", "lightning_kernel"]
            subprocess.run([*exe, "run", "app", app], cwd=tmp, check=False, stdin=subprocess.DEVNULL)
            out = subprocess.run(
                [*exe, "history", "latest", "--json"], cwd=tmp, check=True, capture_output=True, text=True
            ).stdout
        with open(os.path.join(HERE, f"{name}.history.jsonl"), "w") as f:
            f.write(out)
        print(f"{name}: {len(out.splitlines())} events")


if __name__ == "__main__":
    main()
