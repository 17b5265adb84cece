"""Kernel latencies, end to end through `lightning-kernel run app` on the embedded defaults.

Prints: CLI start to the first root.run(); lag from a Work's attribute change to the flow seeing it
(p50, p99, how many of 200 changes at a 20 ms period the flow saw); a trivial sequential Work from
call until the flow passes it; 10 parallel trivial Works until all succeeded.

    python bench/kernel_latency.py [--only start,lag,sequential,parallel]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

START_APP = """
import time
from lightning_kernel import LightningApp, LightningFlow

class Root(LightningFlow):
    def run(self):
        print("FIRST", time.time(), flush=True)
        self.stop()

app = LightningApp(Root())
"""

LAG_APP = """
import json, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Ticker(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.n = 0
        self.t = 0.0
    def run(self):
        for i in range(1, 201):
            time.sleep(0.02)
            self.t = time.time()
            self.n = i

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Ticker()
        self._seen = {}
    def run(self):
        self.w.run()
        n = self.w.n
        if n and n not in self._seen:
            self._seen[n] = time.time() - self.w.t
        if self.w.has_succeeded:
            print("RESULT", json.dumps(self._seen))
            self.stop()

app = LightningApp(Root())
"""

SEQ_APP = """
import json, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Trivial(LightningWork):
    def run(self, i):
        pass

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Trivial()
        self._i = 0
        self._t0 = {}
        self._rt = []
    def run(self):
        while self._i < 60:
            self._t0.setdefault(self._i, time.perf_counter())
            self.w.run(self._i)  # blocks this iteration until the call succeeded
            self._rt.append(time.perf_counter() - self._t0[self._i])
            self._i += 1
        print("RESULT", json.dumps(self._rt))
        self.stop()

app = LightningApp(Root())
"""

PAR_APP = """
import json, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Trivial(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.done = -1
    def run(self, r):
        self.done = r

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        for k in range(10):
            setattr(self, f"w{k}", Trivial())
        self._round = 0
        self._t0 = None
        self._times = []
    def run(self):
        works = self.works()
        while True:
            if self._t0 is None:
                self._t0 = time.perf_counter()
            for w in works:
                w.run(self._round)
            if not all(w.has_succeeded and w.done == self._round for w in works):
                return
            self._times.append(time.perf_counter() - self._t0)
            self._t0 = None
            self._round += 1
            if self._round == 15:
                print("RESULT", json.dumps(self._times))
                self.stop()

app = LightningApp(Root())
"""


def run_app(source: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "app.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        env = {**os.environ, "LK_DATA_DIR": os.path.join(d, "data"), "PYTHONUNBUFFERED": "1"}
        # As on a user's machine, modules are compiled once and their bytecode kept (these machines
        # set PYTHONDONTWRITEBYTECODE, which makes every start compile ~90 modules again).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "lightning_kernel", "run", "app", path],
            capture_output=True,
            text=True,
            env=env,
            cwd=d,
            timeout=300,
        )
        if out.returncode != 0:
            raise SystemExit(f"bench app failed:\n{out.stdout}\n{out.stderr}")
        return t0, out.stdout


def result(stdout: str) -> object:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--only", default="start,lag,sequential,parallel", help="which figures, comma-separated"
    )
    only = set(parser.parse_args().only.split(","))
    if "start" in only:
        start()
    if "lag" in only:
        lag()
    if "sequential" in only:
        sequential()
    if "parallel" in only:
        parallel()


def start() -> None:
    starts = []
    run_app(START_APP)  # warm-up: writes the bytecode caches, fills the page cache
    for _ in range(5):
        t0, out = run_app(START_APP)
        first = float(next(line.split()[1] for line in out.splitlines() if line.startswith("FIRST")))
        starts.append(first - t0)
    print(
        f"start: CLI start to first root.run(): median {statistics.median(starts) * 1000:.0f} ms "
        f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}; 5 runs)  target <= 500 ms"
    )


def lag() -> None:
    _, out = run_app(LAG_APP)
    seen = result(out)
    assert isinstance(seen, dict)
    lags = [v * 1000 for v in seen.values()]
    print(
        f"lag: work attribute change -> flow sees it: p50 {pct(lags, 50):.2f} ms, p99 {pct(lags, 99):.2f} ms, "
        f"seen {len(seen)}/200 changes at a 20 ms period  target p50 <= 2, p99 <= 10, 200/200"
    )


def sequential() -> None:
    _, out = run_app(SEQ_APP)
    rts = [v * 1000 for v in result(out)]  # type: ignore[union-attr]
    warm = rts[1:]
    print(
        f"sequential: trivial Work call -> flow passes it: median {statistics.median(warm):.2f} ms, "
        f"p90 {pct(warm, 90):.2f} ms (first call {rts[0]:.1f} ms; 60 calls)  target <= 30 ms"
    )


def parallel() -> None:
    _, out = run_app(PAR_APP)
    rounds = [v * 1000 for v in result(out)]  # type: ignore[union-attr]
    warm = rounds[1:]
    print(
        f"parallel: 10 trivial Works until all succeeded: median {statistics.median(warm):.1f} ms, "
        f"max {max(warm):.1f} ms (first round, workers starting: {rounds[0]:.0f} ms; 15 rounds)  target <= 150 ms"
    )


if __name__ == "__main__":
    main()
