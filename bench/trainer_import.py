"""Import time of ``lightning_kernel.trainer`` after torch, and whether it pulls in ``torch._dynamo``.

Each sample is a fresh interpreter that imports torch first, then times the Trainer import.

    python bench/trainer_import.py [--samples 7]
    python -X importtime -c "import torch; import lightning_kernel.trainer"   # the breakdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_PROBE = """
import json, sys, time
import torch
start = time.perf_counter()
import lightning_kernel.trainer
elapsed = time.perf_counter() - start
heavy = sorted(m for m in ("torch._dynamo", "torch._inductor", "pytorch_lightning", "lightning") if m in sys.modules)
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    times: list[float] = []
    heavy: set[str] = set()
    for _ in range(args.samples):
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(result["seconds"])
        heavy.update(result["heavy"])
    print(f"import lightning_kernel.trainer after torch: median {statistics.median(times) * 1e3:.1f} ms, "
          f"min {min(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms ({args.samples} fresh interpreters)")
    print(f"heavy modules imported: {sorted(heavy) or 'none (no torch._dynamo)'}")


if __name__ == "__main__":
    main()
