"""Where `run app`'s start goes: a timeline of one start on a fresh data dir, phase by phase.

Runs the same code as `lightning-kernel run app` (in this process, with a small app that stops at
once) and prints when each step began and ended, from the interpreter's start: imports, the local
executor's forkserver, the embedded nats-server, the connection, the streams and the lease bucket,
the app's import and its code artifact, the database's quick check, the run's lease and its
``run.created``, the first ``root.run()``; then what follows it (the SQL store: SQLAlchemy and the
schema; the recorder). Repeats ``--rounds`` times in fresh processes and prints medians.

    python bench/start_profile.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

APP = """
from lightning_kernel import LightningApp, LightningFlow

class Root(LightningFlow):
    def run(self):
        self.stop()

app = LightningApp(Root())
"""

ONE = r"""
import asyncio, functools, json, sys, time
T0 = float(sys.argv[1])
marks = []
def mark(what): marks.append((what, time.time() - T0))
mark("python started, imports begin")
from lightning_kernel import _cli  # the command's own module, as `lightning-kernel` imports it
from lightning_kernel._config import Config
cfg = Config.from_env()
mark("CLI imported")
early = _cli._warm(cfg)
mark("data dir locked, nats-server and forkserver spawned (they boot meanwhile)")
import lightning_kernel._embedded as E, lightning_kernel._kernel as K, lightning_kernel._natsserver as N
import lightning_kernel._bus as B, lightning_kernel._recorder as R, lightning_kernel._lease as L
import lightning_kernel._loop as LP, lightning_kernel._app as A, lightning_kernel._datadir as D
mark("kernel modules imported")

def wrap(obj, name, label):
    f = getattr(obj, name)
    if asyncio.iscoroutinefunction(f):
        @functools.wraps(f)
        async def g(*a, **k):
            mark(f"> {label}")
            try:
                return await f(*a, **k)
            finally:
                mark(f"< {label}")
    else:
        @functools.wraps(f)
        def g(*a, **k):
            mark(f"> {label}")
            try:
                return f(*a, **k)
            finally:
                mark(f"< {label}")
    setattr(obj, name, g)

wrap(N.Spawned, "ready", "wait for nats-server")
wrap(B.Bus, "connect", "connect")
wrap(B.Bus, "ensure_streams", "streams")
wrap(L.Leases, "start", "lease bucket")
wrap(A, "load_app", "import the app")
wrap(K.Kernel, "pack_code", "code artifact")
wrap(D.DataDir, "quick_check", "database quick check")
wrap(L.Leases, "acquire", "lease")
wrap(B.Bus, "publish", "publish")
wrap(K, "_open_store", "SQL store (SQLAlchemy, schema)")
wrap(R.Recorder, "start", "recorder start")
first = LP.RunDriver._run_flow
def first_flow(self):
    if self.iterations == 0:
        mark("first root.run()")
    return first(self)
LP.RunDriver._run_flow = first_flow
E.run_embedded(cfg, "app.py", early=early)
mark("exit")
print("MARKS", json.dumps(marks))
"""


def one_start() -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "app.py"), "w") as f:
            f.write(textwrap.dedent(APP))
        env = {**os.environ, "LK_DATA_DIR": os.path.join(d, "data")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode kept, as on a user's machine
        import time

        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-c", ONE, str(t0)], capture_output=True, text=True, env=env, cwd=d, timeout=120
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("MARKS ")), None)
        if line is None:
            raise SystemExit(f"the start failed:\n{out.stdout}\n{out.stderr}")
        return [(what, float(t)) for what, t in json.loads(line[6:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    one_start()  # warm-up: bytecode caches, page cache
    runs = [one_start() for _ in range(rounds)]
    names: list[str] = []
    for what, _ in runs[0]:
        if what not in names:
            names.append(what)
    print(f"`run app` start on a fresh data dir, ms from the interpreter's start (median of {rounds}):")
    for what in names:
        times = [next(t for w, t in run if w == what) for run in runs if any(w == what for w, _ in run)]
        print(f"  {statistics.median(times) * 1000:7.0f}  {what}")


if __name__ == "__main__":
    main()
