"""How fast one Work publishes: state changes emitted through a worker's ``BusThread`` (the path every
``self.x = ...`` in a Work's ``run()`` takes), until the stream has acknowledged all of them.

    python bench/work_publish.py [--events 30000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from lightning_kernel._bus import Bus
from lightning_kernel._events import WorkStateChanged
from lightning_kernel._natsserver import EmbeddedNats
from lightning_kernel._runtime_io import BusThread


async def _streams(server: EmbeddedNats) -> None:
    bus = await Bus.connect(server.url, server.token)
    await bus.ensure_streams()
    await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates, emits = [], []
    with tempfile.TemporaryDirectory() as d:
        server = EmbeddedNats.start(d)
        try:
            asyncio.run(_streams(server))
            for r in range(args.rounds):
                work = BusThread(server.url, server.token, f"bench{r}", "root.w")
                events = [
                    WorkStateChanged(work="root.w", call="c", changes={"i": i}) for i in range(args.events)
                ]
                t0 = time.perf_counter()
                for event in events:
                    work.emit(event)
                t1 = time.perf_counter()
                work.barrier(timeout=600)
                t2 = time.perf_counter()
                work.close()
                emits.append((t1 - t0) / args.events * 1e6)
                rates.append(args.events / (t2 - t0))
        finally:
            server.stop()
    print(
        f"one Work publishing: {statistics.median(rates):,.0f} events/s acknowledged by the stream "
        f"(median of {args.rounds}; best {max(rates):,.0f}); emit() returns in {statistics.median(emits):.1f} us"
    )


if __name__ == "__main__":
    main()
