"""`run app` start to the first root.run(), lightning-kernel beside Lightning App 2.3.2 in the same run.

Lightning App needs its own environment (it pins old uvicorn and setuptools)::

    python3 -m venv /tmp/la && /tmp/la/bin/pip install torch==2.13.0 "lightning[app]==2.3.2" \
        "setuptools<70" "uvicorn<0.30"
    python bench/start_vs_lightning_app.py --la-python /tmp/la/bin/python [--rounds 5]

Each round uses a fresh data dir (and a fresh HOME for Lightning App); bytecode is cached, as on a
user's machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

APP = """
import time
from {pkg} import LightningApp, LightningFlow

class Root(LightningFlow):
    def run(self):
        print("FIRST", time.time(), flush=True)
        {stop}

app = LightningApp(Root())
"""

LA_CLI = "import sys; from lightning.app.cli.lightning_cli import main; sys.argv[0] = 'lightning_app'; main()"


def first_run(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd
    )
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("FIRST "):
            first = float(line.split()[1])
            break
    proc.kill()  # Lightning App's os._exit ends its flow process only; its CLI lingers
    proc.wait()
    if first is None:
        raise SystemExit(f"{cmd[0]} never reached root.run()")
    return first - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--la-python", required=True, help="a Python with lightning[app]==2.3.2")
    parser.add_argument("--rounds", type=int, default=5)
    a = parser.parse_args()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(a.rounds):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "lk_app.py"), "w") as f:
                f.write(APP.format(pkg="lightning_kernel", stop="self.stop()"))
            with open(os.path.join(d, "la_app.py"), "w") as f:
                f.write("import os\n" + APP.format(pkg="lightning.app", stop="os._exit(0)"))
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            ours.append(
                first_run(
                    [sys.executable, "-m", "lightning_kernel", "run", "app", "lk_app.py"],
                    {**env, "LK_DATA_DIR": os.path.join(d, "data")},
                    d,
                )
            )
            theirs.append(
                first_run(
                    [a.la_python, "-c", LA_CLI, "run", "app", "la_app.py", "--open-ui", "false"],
                    {**env, "HOME": d},
                    d,
                )
            )
    lk, la = statistics.median(ours), statistics.median(theirs)
    print(f"lightning-kernel start to first root.run(): median {lk * 1000:.0f} ms ({a.rounds} runs)")
    print(f"Lightning App 2.3.2 start to first root.run(): median {la * 1000:.0f} ms ({a.rounds} runs)")
    print(f"lightning-kernel is {la / lk:.1f}x faster to start (target 8x)")


if __name__ == "__main__":
    main()
