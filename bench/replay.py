"""A long run: the fold's rate, ``state``/``resume`` loads, a ``history`` page, the state's size.

Builds a run of ``--events`` events (1,000,000) of a flow that keeps two ``cache_calls=False``
Works busy and calls a ``cache_calls=True`` one now and then (``run_events``), and prints:

- the fold's events/s, beside the same fold building each event (``to_event``, as it did) and the
  plain fold of 275317a (every call kept, a Work's calls copied at each of its events), taken from
  git;
- the state's size (call records, JSON KiB) and the process's RSS as the run grows, for both;
- written into SQLite (and PostgreSQL, when ``--pg`` answers) through the store, folded and
  snapshotted by the recorder's own code: ``state RUN`` and ``resume RUN``'s load (snapshot plus
  tail), ``state --at SEQ`` mid-run, ``history RUN --after N --limit 100``, and a plain fold of
  all the run's events from SQL, as when no snapshot of this fold version exists.

    python bench/replay.py [--events 1000000] [--quick] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import itertools
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, cast
from unittest import mock

from lightning_kernel import _projection as projection
from lightning_kernel._codec import to_event
from lightning_kernel._json import dumps
from lightning_kernel._recorder import SNAPSHOT_EVERY, Recorder
from lightning_kernel._records import EventRecord
from lightning_kernel._sql import SqlEventStore, open_store
from lightning_kernel._store import load_state
from lightning_kernel._views import print_history, run_state
from lightning_kernel._work import call_hash

RUN = "bench-long"
TRAINERS = ("root.train_0", "root.train_1")
"""``cache_calls=False`` Works, called again and again (each call a new run of them)."""
PREPARE = "root.prepare"
"""A ``cache_calls=True`` Work, called with one of ``CONFIGS`` argument sets (each runs once)."""
CONFIGS = 64


def components() -> dict[str, dict[str, Any]]:
    def work(cache_calls: bool) -> dict[str, Any]:
        spec = {"parallel": True, "cache_calls": cache_calls, "raise_exception": True}
        return {"kind": "work", "vars": {"loss": 0.0, "step": 0, "best": ""}, "spec": spec}

    comps = {"root": {"kind": "flow", "vars": {"round": 0, "losses": [], "best": ""}, "spec": {}}}
    comps.update({name: work(False) for name in TRAINERS})
    comps[PREPARE] = work(True)
    return comps


class _Log:
    def __init__(self, first_seq: int) -> None:
        self.seq = itertools.count(first_seq)
        self.ts = 1.7e9

    def record(self, type_: str, body: dict[str, Any], source: str = "kernel") -> EventRecord:
        seq = next(self.seq)
        self.ts += 0.001
        return EventRecord(seq, f"e{seq}", RUN, type_, 1, self.ts, source, body)


def run_events(n: int, first_seq: int = 1) -> Iterator[EventRecord]:
    """``n`` events of one long run, as the store returns them: a flow that keeps two parallel
    ``cache_calls=False`` Works busy (a request, running, three state changes, a Path persisted,
    succeeded, the flow's diff), now and then a ``cache_calls=True`` Work with one of ``CONFIGS``
    argument sets, and each worker replaced every 20,000 events."""
    log = _Log(first_seq)
    yield log.record(
        "run.created", {"name": "bench", "app_file": "bench.py", "app": "ref", "components": components()}
    )
    made = 1
    index = dict.fromkeys((*TRAINERS, PREPARE), 0)
    attempt = dict.fromkeys((*TRAINERS, PREPARE), 0)
    prepared: set[str] = set()

    def cycle(r: int) -> Iterator[EventRecord]:
        for name in (*TRAINERS, PREPARE):
            if attempt[name] == 0 or r % 2500 == 0:
                if attempt[name]:
                    yield log.record(
                        "work.worker_exited",
                        {"work": name, "attempt": attempt[name], "cause": "exited", "code": 0},
                    )
                attempt[name] += 1
                yield log.record(
                    "work.worker_started",
                    {"work": name, "attempt": attempt[name], "executor": "local", "ref": {"pid": r}},
                )
        yield log.record("flow.state_changed", {"changes": {"root": {"round": r}}})
        for k, name in enumerate(TRAINERS):
            if r % 7 == 3 and k == 1:
                args: list[Any] = [f"config-{r % CONFIGS}"]
                key = call_hash(args, {})
                if key in prepared:
                    continue
                prepared.add(key)
                name, call = PREPARE, key
            else:
                args = [r, {"lr": 0.001 * (1 + r % 5)}]
                call = f"{call_hash(args, {})}.{index[name] + 1}"
            index[name] += 1
            a = attempt[name]
            vars_ = {"loss": 0.0, "step": 0, "best": ""}
            yield log.record(
                "work.run_requested",
                {"work": name, "call": call, "index": index[name], "args": args, "kwargs": {}, "vars": vars_},
            )
            yield log.record(
                "work.status_changed", {"work": name, "call": call, "stage": "running", "attempt": a}, name
            )
            for step in range(3):
                changes = {"loss": 1.0 / (r + step + 1), "step": step}
                yield log.record(
                    "work.state_changed", {"work": name, "call": call, "changes": changes, "attempt": a}, name
                )
            data = {"path": "lit://model.pt", "size": 1024, "sha256": "0" * 64}
            yield log.record(
                "work.record", {"work": name, "kind": "path.persisted", "data": data, "attempt": a}, name
            )
            yield log.record(
                "work.status_changed", {"work": name, "call": call, "stage": "succeeded", "attempt": a}, name
            )
        yield log.record("flow.state_changed", {"changes": {"root": {"best": f"model-{r}", "losses": [r]}}})

    for r in itertools.count(1):
        for record in cycle(r):
            yield record
            made += 1
            if made >= n:
                return


# -- the fold -----------------------------------------------------------------------------------------

Fold = Callable[[projection.State, list[EventRecord]], projection.State]
PLAIN_COMMIT = "275317a"


def plain_fold() -> Fold | None:
    """The fold as of ``PLAIN_COMMIT`` (before calls were compacted), from git; None without git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        source = subprocess.run(
            ["git", "show", f"{PLAIN_COMMIT}:kernel/_projection.py"],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader(f"lightning_kernel._projection_{PLAIN_COMMIT}", loader=None)
    assert spec is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    module.__package__ = "lightning_kernel"
    exec(compile(source, f"{PLAIN_COMMIT}:kernel/_projection.py", "exec"), module.__dict__)
    fold: Fold = module.fold
    return lambda state, records: fold(records, state)


def this_fold(state: projection.State, records: list[EventRecord]) -> projection.State:
    return projection.fold(records, state)


def built_fold(state: projection.State, records: list[EventRecord]) -> projection.State:
    """This fold, building each event as the handlers did before they read the body."""
    with mock.patch.object(projection, "_fields", lambda r, cls: to_event(r).body()):
        return projection.fold(records, state)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def calls_of(state: projection.State) -> int:
    return sum(len(w["calls"]) for w in state["works"].values())


def measure_fold(fold: Fold, n: int, checkpoints: int) -> tuple[float, list[tuple[int, int, float, float]]]:
    """``(events/s, [(events, call records, state KiB, RSS MiB)] at each checkpoint)``: the fold is timed
    alone, over chunks of events made beforehand."""
    gc.collect()
    state: projection.State = projection.empty()
    events = run_events(n)
    every = max(n // checkpoints, 1)
    spent, done, rows = 0.0, 0, []
    while done < n:
        chunk = list(itertools.islice(events, min(10_000, every - done % every)))
        if not chunk:
            break
        t0 = time.perf_counter()
        state = fold(state, chunk)
        spent += time.perf_counter() - t0
        done += len(chunk)
        if done % every == 0 or done >= n:
            del chunk
            rows.append((done, calls_of(state), len(dumps(state)) / 1024, rss_mib()))
    return done / spent, rows


def bench_fold(n: int, checkpoints: int) -> None:
    print(f"fold of {n:,} events (flow diffs, Work requests, statuses, state changes, records, workers):")
    rate, rows = measure_fold(this_fold, n, checkpoints)
    print(f"  {'this fold (FOLD_VERSION ' + str(projection.FOLD_VERSION) + ')':<58} {rate:>10,.0f} events/s")
    built, _ = measure_fold(built_fold, n, 1)
    print(f"  {'this fold, building each event (to_event)':<58} {built:>10,.0f} events/s")
    plain = plain_fold()
    if plain is None:
        print(f"  plain fold: skipped (no git history to take {PLAIN_COMMIT}'s fold from)")
        plain_rows: list[tuple[int, int, float, float]] = []
    else:
        plain_rate, plain_rows = measure_fold(plain, n, checkpoints)
        label = f"plain fold ({PLAIN_COMMIT}: every call kept, copied at each event)"
        print(f"  {label:<58} {plain_rate:>10,.0f} events/s")
    print("the state as the run grows (RSS: this process, each fold measured alone):")
    print(
        f"  {'events':>10}  {'this: calls':>11} {'KiB':>8} {'RSS MiB':>8}  {'plain: calls':>12} {'KiB':>8} {'RSS MiB':>8}"
    )
    for i, (done, calls, kib, rss) in enumerate(rows):
        line = f"  {done:>10,}  {calls:>11,} {kib:>8,.1f} {rss:>8,.0f}"
        if i < len(plain_rows):
            _, pcalls, pkib, prss = plain_rows[i]
            line += f"  {pcalls:>12,} {pkib:>8,.0f} {prss:>8,.0f}"
        print(line)


# -- the store ----------------------------------------------------------------------------------------


def build(store: SqlEventStore, n: int) -> float:
    """Write the run through the store as the recorder does (batches of 1000 events, the runs row, a
    snapshot every ``SNAPSHOT_EVERY`` events, folded by its own code); returns the seconds it took.

    The run has ``SNAPSHOT_EVERY - 1`` events more than ``n``, so a load folds the longest tail."""
    recorder = Recorder(cast(Any, None), store)
    events = run_events(n + SNAPSHOT_EVERY - 1)
    t0 = time.perf_counter()
    while batch := list(itertools.islice(events, 1000)):
        store.write(recorder._fold_batch(batch))
    return time.perf_counter() - t0


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and worst wall ms of ``repeat`` calls, after one to warm the connection pool up."""
    fn()
    spent = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        spent.append((time.perf_counter() - t0) * 1000)
    return statistics.median(spent), max(spent)


def plain_load(store: SqlEventStore) -> projection.State:
    """``load_state`` when no snapshot is of this fold's version: the run folded from its first event."""
    with mock.patch.object(projection, "FOLD_VERSION", projection.FOLD_VERSION + 1):
        return load_state(store, RUN)


class LocalHistory:
    """What ``history`` asks of the local client: the store's events."""

    def __init__(self, store: SqlEventStore) -> None:
        self.store = store

    def history(self, run_id: str, after: int, limit: int | None) -> list[EventRecord]:
        return self.store.events(run_id, after_seq=after, limit=limit)


def bench_store(store: SqlEventStore, label: str, n: int, repeat: int) -> None:
    seconds = build(store, n)
    last = store.run(RUN).last_seq
    print(
        f"{label}: {last:,} events written in {seconds:.1f} s, snapshots every {SNAPSHOT_EVERY} (the recorder's)"
    )
    snap = store.latest_snapshot(RUN, fold=projection.FOLD_VERSION)
    assert snap is not None
    state = load_state(store, RUN)
    size = len(dumps(snap.state)) / 1024
    print(
        f"  newest snapshot: seq {snap.seq:,}, {size:.1f} KiB; a load folds {last - snap.seq} events after it"
    )

    def resume_load() -> None:  # what Kernel.resume_run reads before it hosts the run again
        info = store.run(RUN)
        load_state(store, info.id)
        store.events(info.id, 0, None, 1)

    def history(after: int) -> Callable[[], None]:
        def page() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                print_history(cast(Any, LocalHistory(store)), RUN, False, after, 100)

        return page

    rows: list[tuple[str, Callable[[], object]]] = [
        ("state RUN (snapshot + tail)", lambda: run_state(store, RUN, None)),
        ("resume RUN: its load (snapshot + tail)", resume_load),
        (f"state RUN --at {last // 2 + 250:,}", lambda: run_state(store, RUN, last // 2 + 250)),
        ("history RUN --after 0 --limit 100", history(0)),
        (f"history RUN --after {last // 2:,} --limit 100", history(last // 2)),
        (f"history RUN --after {last - 100:,} --limit 100", history(last - 100)),
    ]
    for what, fn in rows:
        median, worst = timed(fn, repeat)
        print(f"  {what:<56} {median:>8.1f} ms  (worst of {repeat}: {worst:.1f})")
    rss, t0 = rss_mib(), time.perf_counter()
    plain = plain_load(store)
    spent = (time.perf_counter() - t0) * 1000
    label = "plain fold of all its events (no snapshot of this fold)"
    print(f"  {label:<56} {spent:>8,.0f} ms  (RSS {rss:.0f} -> {rss_mib():.0f} MiB)")
    assert plain == state, "the snapshot plus its tail is not the state of the whole run"


def bench_sqlite(n: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/kernel.db")
        try:
            bench_store(store, "SQLite (WAL)", n, repeat)
        finally:
            store.close()


def bench_postgres(url: str, n: int, repeat: int) -> None:
    import psycopg

    try:
        admin = psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True, connect_timeout=5
        )
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url}: not reachable, skipped ({str(exc).strip().splitlines()[0]})")
        return
    schema = f"lk_bench_{secrets.token_hex(4)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    store = open_store(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        bench_store(store, "PostgreSQL", n, repeat)
    finally:
        store.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="100,000 events, fewer repeats")
    p.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test", help="'' to skip")
    p.add_argument("--only", default="fold,sqlite,pg", help="a comma-separated subset of fold,sqlite,pg")
    a = p.parse_args()
    n, repeat = (100_000, 5) if a.quick else (a.events, 20)
    only = set(a.only.split(","))
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if "fold" in only:
        bench_fold(n, 10)
    if "sqlite" in only:
        bench_sqlite(n, repeat)
    if "pg" in only and a.pg:
        bench_postgres(a.pg, n, repeat)


if __name__ == "__main__":
    main()
