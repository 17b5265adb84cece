"""Rows per second written by the SQL store in batches of 1000 events, SQLite and PostgreSQL.

``store.write`` is what the recorder calls: one transaction per batch holding 1000 events, the
run's row (upserted) and, every other batch, a snapshot. The other lines time alternative ways to
insert 1000 events alone, each batch in its own transaction, so the choice made in
``lightning_kernel._sql_write`` can be checked on this machine. The methods take turns, batch by
batch, against the same tables.

    python bench/sql_write.py [--batches 50] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psycopg
from lightning_kernel._records import Batch, EventRecord, RunInfo, Snapshot
from lightning_kernel._sql import SqlEventStore, open_store
from lightning_kernel._sql_write import _event_rows
from sqlalchemy.engine import Connection

BATCH = 1000
COLS = "seq, id, run_id, type, version, ts, source, body"


def make_events(start: int, n: int, run_id: str) -> list[EventRecord]:
    return [
        EventRecord(
            seq=s,
            id=secrets.token_hex(16),
            run_id=run_id,
            type="WorkStateChanged",
            version=1,
            ts=time.time(),
            source="root.w",
            body={"work": "root.w", "call": "c", "changes": {"i": s}},
        )
        for s in range(start, start + n)
    ]


Write = Callable[[list[EventRecord]], None]


def compare(methods: dict[str, Write], batches: int) -> None:
    """Rows/s of each method, taking turns batch by batch so the growing table weighs on all alike.

    Events are made beforehand: only the writing (JSON encoding included) is timed.
    """
    spent = dict.fromkeys(methods, 0.0)
    for b in range(batches + 1):
        for i, (label, write) in enumerate(methods.items()):
            events = make_events((i * (batches + 1) + b) * BATCH + 1, BATCH, f"run-{i}")
            t0 = time.perf_counter()
            write(events)
            if b:  # batch 0 warms up: first connection, prepared statements, staging tables
                spent[label] += time.perf_counter() - t0
    for label, seconds in spent.items():
        print(f"  {label:<50} {batches * BATCH / seconds:>10,.0f} rows/s")


def store_write(store: SqlEventStore) -> Write:
    """What the recorder does: events, the run's row, a snapshot every other batch (500 events)."""
    count = [0]

    def write(events: list[EventRecord]) -> None:
        run, last = events[0].run_id, events[-1].seq
        batch = Batch(
            events=events, runs=[RunInfo(run, "bench", "bench.py", "running", 1.0, time.time(), "", last)]
        )
        count[0] += 1
        if count[0] % 2:
            batch.snapshots.append(
                Snapshot(run, last, {"run": {"seq": last}, "components": {"root.w": {"i": last}}})
            )
        store.write(batch)

    return write


def alternative(store: SqlEventStore, insert: Callable[[Connection, list[EventRecord]], None]) -> Write:
    """Events alone, inserted by ``insert`` in a transaction of their own."""

    def write(events: list[EventRecord]) -> None:
        with store.engine.connect().execution_options(lk_write=True) as conn, conn.begin():
            insert(conn, events)

    return write


def _rows(events: list[EventRecord]) -> list[tuple[Any, ...]]:
    return _event_rows(events)


def sqlite_executemany(conn: Connection, events: list[EventRecord]) -> None:
    conn.exec_driver_sql(
        f"INSERT INTO events ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", _rows(events)
    )


def sqlite_values(conn: Connection, events: list[EventRecord]) -> None:
    # SQLite caps bound parameters (32766 here): 1000 rows x 8 columns fits in one statement.
    rows = _rows(events)
    marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
    conn.exec_driver_sql(
        f"INSERT INTO events ({COLS}) VALUES {marks} ON CONFLICT DO NOTHING",
        tuple(v for r in rows for v in r),
    )


def pg_executemany(conn: Connection, events: list[EventRecord]) -> None:
    conn.exec_driver_sql(
        f"INSERT INTO events ({COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        _rows(events),
    )


def pg_values(conn: Connection, events: list[EventRecord]) -> None:
    rows = _rows(events)
    marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    conn.exec_driver_sql(
        f"INSERT INTO events ({COLS}) VALUES {marks} ON CONFLICT DO NOTHING",
        tuple(v for r in rows for v in r),
    )


def pg_unnest(conn: Connection, events: list[EventRecord]) -> None:
    types = ("int8", "text", "text", "text", "int4", "float8", "text", "text")
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    conn.exec_driver_sql(
        f"INSERT INTO events ({COLS}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
        tuple(list(col) for col in zip(*_rows(events), strict=True)),
    )


def pg_copy(conn: Connection, events: list[EventRecord]) -> None:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cur:
        if not conn.info.get("bench_copy_table"):
            cur.execute("CREATE TEMP TABLE bench_events_in (LIKE events) ON COMMIT DELETE ROWS")
            conn.info["bench_copy_table"] = True
        with cur.copy(f"COPY bench_events_in ({COLS}) FROM STDIN") as copy:
            for row in _rows(events):
                copy.write_row(row)
        cur.execute(f"INSERT INTO events ({COLS}) SELECT {COLS} FROM bench_events_in ON CONFLICT DO NOTHING")


def bench_sqlite(batches: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.db")
        try:
            print(f"SQLite (WAL, synchronous=NORMAL), batches of {BATCH} events:")
            compare(
                {
                    "store.write (+ run row, snapshots)": store_write(store),
                    "executemany (chosen)": alternative(store, sqlite_executemany),
                    "one multi-row VALUES": alternative(store, sqlite_values),
                },
                batches,
            )
        finally:
            store.close()


def bench_postgres(url: str, batches: int) -> None:
    schema = f"lk_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    store = open_store(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        print(f"PostgreSQL, batches of {BATCH} events:")
        compare(
            {
                "store.write (+ run row, snapshots)": store_write(store),
                "COPY into temp table, INSERT .. SELECT (chosen)": alternative(store, pg_copy),
                "executemany, one pipeline": alternative(store, pg_executemany),
                "INSERT .. SELECT FROM unnest(arrays)": alternative(store, pg_unnest),
                "one multi-row VALUES": alternative(store, pg_values),
            },
            batches,
        )
    finally:
        store.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = p.parse_args()
    bench_sqlite(a.batches)
    bench_postgres(a.pg, a.batches)


if __name__ == "__main__":
    main()
