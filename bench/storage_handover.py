"""Hand-over latency of a 1 KB file from one Work to the next, on the local store.

From the moment the producer's run() returns (its Path is then persisted and its success reported)
to the moment the consumer's run() starts with the file already in its root. Lightning App polls
every 0.1 s and 0.5 s along this path; the target here is <= 20 ms.

    python bench/storage_handover.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_latency import pct, result, run_app

APP = """
import json, os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Producer(LightningWork):
    def __init__(self):
        super().__init__()
        self.out = "lit://handover/blob.bin"
        self.t_end = 0.0
    def run(self, i):
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        with open(self.out, "wb") as f:
            f.write(os.urandom(1024))
        self.t_end = time.time()

class Consumer(LightningWork):
    def __init__(self):
        super().__init__()
        self.lags = []
    def run(self, blob, t_end, i):
        assert os.path.getsize(blob) == 1024
        self.lags = self.lags + [time.time() - t_end]

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.p = Producer()
        self.c = Consumer()
        self.i = 0
    def run(self):
        while self.i < 30:
            self.p.run(self.i)
            self.c.run(self.p.out, self.p.t_end, self.i)
            self.i += 1
        print("RESULT", json.dumps(self.c.lags))
        self.stop()

app = LightningApp(Root())
"""


def main() -> None:
    _, out = run_app(APP)
    lags = [v * 1000 for v in result(out)][1:]  # type: ignore[union-attr]
    print(
        f"hand-over of a 1 KB file, producer run() returns -> consumer run() starts with it: "
        f"median {statistics.median(lags):.1f} ms, p90 {pct(lags, 90):.1f} ms (29 hand-overs)  target <= 20 ms"
    )


if __name__ == "__main__":
    main()
