"""Throughput of a 200 MB directory through the artifact store, against a plain s3fs copy.

A Work persists a folder (150 files of 1 MB and 2 of 25 MB, random bytes) and another Work
transfers it in (``persist_paths`` then ``transfer_inputs``: hashing, dedup checks, manifest,
atomic downloads). The baseline is ``s3fs`` ``put`` then ``get`` of the same files with lists of
paths, in the same run, against the same moto server. Rounds alternate between the two and the
best round of each is kept, so a slow moment of the shared machine hurts neither more.

    python bench/storage_throughput.py [--rounds 3] [--mb 200]

Target: the store's round trip at >= 90% of the plain s3fs round trip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("moto_server")
    if exe is None:
        sys.exit("moto_server is not installed: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("moto_server did not start")


def make_tree(root: str, total_mb: int) -> list[str]:
    big = 2
    small = max(total_mb - 25 * big, 0)
    files = []
    for i in range(small):
        files.append(os.path.join(root, "ckpt", f"shard-{i:03d}.bin"))
    files += [os.path.join(root, "ckpt", "big", f"model-{i}.bin") for i in range(big)]
    for n, path in enumerate(files):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom((25 if n >= small else 1) << 20))
    return files


def plain_s3fs(fs: Any, files: list[str], src_root: str, bucket: str, dst_root: str) -> tuple[float, float]:
    rel = [os.path.relpath(f, src_root) for f in files]
    rpaths = [f"{bucket}/plain/{r}" for r in rel]
    t0 = time.perf_counter()
    fs.put(files, rpaths)
    t1 = time.perf_counter()
    lpaths = [os.path.join(dst_root, r) for r in rel]
    for p in lpaths:
        os.makedirs(os.path.dirname(p), exist_ok=True)
    fs.get(rpaths, lpaths)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def through_store(store: Any, src_root: str, dst_root: str) -> tuple[float, float]:
    from lightning_kernel.storage import Path, StorageContext
    from lightning_kernel.storage._context import using
    from lightning_kernel.storage._persist import persist_paths, transfer_inputs

    run = uuid.uuid4().hex[:8]
    ckpt = Path("lit://ckpt", origin="root.train")
    t0 = time.perf_counter()
    with using(StorageContext(store, run, "root.train", src_root)):
        persist_paths([ckpt])
    t1 = time.perf_counter()
    with using(StorageContext(store, run, "root.deploy", dst_root)):
        (record,) = transfer_inputs([ckpt])
    t2 = time.perf_counter()
    assert record["downloaded_files"] == record["files"], record
    return t1 - t0, t2 - t1


def local_figures(src: str, work: str, size_mb: float) -> None:
    """The same tree through the default local store, against two plain copies of the files."""
    from lightning_kernel.storage import ArtifactStore

    t0 = time.perf_counter()
    shutil.copytree(src, os.path.join(work, "copy1"))
    shutil.copytree(os.path.join(work, "copy1"), os.path.join(work, "copy2"))
    plain = time.perf_counter() - t0
    up, down = through_store(ArtifactStore(f"file://{work}/artifacts"), src, os.path.join(work, "local-dst"))
    print(
        f"local store: persist {size_mb / up:7.1f} MB/s  transfer {size_mb / down:7.1f} MB/s  "
        f"round trip {size_mb / (up + down):7.1f} MB/s; two plain copies {size_mb / plain:7.1f} MB/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs
    from lightning_kernel.storage import ArtifactStore

    proc, endpoint = start_moto()
    work = tempfile.mkdtemp(prefix="lk-bench-")
    try:
        src = os.path.join(work, "src")
        files = make_tree(src, args.mb)
        size_mb = sum(os.path.getsize(f) for f in files) / 2**20
        opts = {"client_kwargs": {"endpoint_url": endpoint}, "key": "bench", "secret": "bench"}
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)  # type: ignore[arg-type]
        best: dict[str, tuple[float, float]] = {}
        trips: dict[str, list[float]] = {"s3fs": [], "store": []}
        for r in range(args.rounds):
            for name in ("s3fs", "store"):
                bucket = f"bench-{uuid.uuid4().hex[:10]}"
                fs.mkdir(bucket)
                dst = os.path.join(work, f"dst-{name}-{r}")
                if name == "s3fs":
                    up, down = plain_s3fs(fs, files, src, bucket, dst)
                else:
                    store = ArtifactStore(f"s3://{bucket}/lk", opts)
                    store.check()  # connect outside the timing, as the baseline's client already is
                    up, down = through_store(store, src, dst)
                print(
                    f"round {r + 1} {name:6s} up {size_mb / up:7.1f} MB/s  down {size_mb / down:7.1f} MB/s",
                    flush=True,
                )
                trips[name].append(up + down)
                if name not in best or up + down < sum(best[name]):
                    best[name] = (up, down)
                fs.rm(bucket, recursive=True)
                shutil.rmtree(dst)
        print(f"\n{len(files)} files, {size_mb:.0f} MB, moto at {endpoint}, best of {args.rounds} rounds")
        for name, (up, down) in best.items():
            print(
                f"{name:6s} upload {size_mb / up:7.1f} MB/s  download {size_mb / down:7.1f} MB/s  "
                f"round trip {size_mb / (up + down):7.1f} MB/s"
            )
        ratio = sum(best["s3fs"]) / sum(best["store"])
        median = statistics.median(trips["s3fs"]) / statistics.median(trips["store"])
        print(f"store / plain s3fs round trip: {ratio:.0%} best, {median:.0%} median (target >= 90%)")
        local_figures(src, work, size_mb)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
