"""Import time of ``lightning_kernel.trainer`` after torch, and whether it pulls in ``torch._dynamo``.

Each sample is a fresh interpreter that imports torch first, then times the Trainer import: once
compiling every module (no bytecode: a first import, or PYTHONDONTWRITEBYTECODE), once with the
bytecode cached (what an installed package sees).

    python bench/trainer_import.py [--samples 7]
    python -X importtime -c "import torch; import lightning_kernel.trainer"   # the breakdown
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

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
    heavy: set[str] = set()
    # Bytecode cached in a private folder, as an installed package has it; an environment with
    # PYTHONDONTWRITEBYTECODE would otherwise time the compiler on every import.
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for label, warm in (("compiling every module", False), ("bytecode cached", True)):
            run_env = env if warm else {**env, "PYTHONDONTWRITEBYTECODE": "1"}
            if warm:
                subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, check=True)
            times: list[float] = []
            for _ in range(args.samples):
                out = subprocess.run(
                    [sys.executable, "-c", _PROBE], env=run_env, capture_output=True, text=True, check=True
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                times.append(result["seconds"])
                heavy.update(result["heavy"])
            print(
                f"import lightning_kernel.trainer after torch ({label}): median "
                f"{statistics.median(times) * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms, max "
                f"{max(times) * 1e3:.1f} ms ({args.samples} fresh interpreters)"
            )
    print(f"heavy modules imported: {sorted(heavy) or 'none (no torch._dynamo)'}")


if __name__ == "__main__":
    main()
