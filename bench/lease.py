"""What run leases cost: taking one, renewing many, and a worker's check that its kernel is alive.

A kernel takes one lease per run it drives (JetStream KV, ``kernel/_lease.py``) and renews all of them
every third of the TTL; each worker looks at its run's lease about once a second. Prints, against a
real nats-server: the time to take a lease, one renewal round for 1, 100 and 1000 runs, and a
worker's look.

    python bench/lease.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from lightning_kernel._bus import Bus
from lightning_kernel._lease import Holder, Leases, run_key
from lightning_kernel._natsserver import EmbeddedNats


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs) * 1e3:.2f} ms, p99 {xs[int(len(xs) * 0.99) - 1] * 1e3:.2f} ms"


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        server = EmbeddedNats.start(d)
        try:
            bus = await Bus.connect(server.url, server.token)
            started = time.perf_counter()
            leases = Leases(bus, Holder.this_process("bench"), lambda key, why: print("lost", key, why))
            await leases.start()
            print(
                f"lease bucket looked up or made: {(time.perf_counter() - started) * 1e3:.1f} ms (once per kernel)"
            )
            takes = []
            for i in range(rounds):
                t = time.perf_counter()
                await leases.acquire(run_key(f"r{i}"), f"run r{i}")
                takes.append(time.perf_counter() - t)
            print(f"take a run's lease: {_ms(takes)}")
            assert leases._task is not None
            leases._task.cancel()  # the rounds below are timed one by one instead
            for runs in (1, 100, 1000):
                for key in list(leases._held):
                    await leases.release(key)
                keys = [run_key(f"n{runs}-{i}") for i in range(runs)]
                for key in keys:
                    await leases.acquire(key, key)
                passes, cpu = [], []
                for _ in range(max(3, rounds // runs)):
                    t, c = time.perf_counter(), time.process_time()
                    await leases.renew_all()  # every lease this kernel holds, as its renewal task does
                    passes.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                every = leases.ttl / 3
                print(
                    f"renew {len(leases._held)} leases: {statistics.median(passes) * 1e3:.1f} ms per round "
                    f"(CPU {statistics.median(cpu) * 1e3:.1f} ms), every {every:.1f} s"
                )
            looks = []
            for _ in range(rounds):
                t = time.perf_counter()
                await bus.kv_get(run_key("n1000-0"))
                looks.append(time.perf_counter() - t)
            print(f"a worker's look at its run's lease (once a second): {_ms(looks)}")
            await leases.close()
            await bus.close()
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
