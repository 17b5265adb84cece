"""Writing one ``Batch`` inside an open transaction, in the fastest idempotent form per dialect.

Events and logs are inserted unless their key is there already (a redelivered batch changes
nothing); runs are upserted by id, but never moved back to an older ``last_seq``; snapshots are
upserted by (run_id, seq). ``ON CONFLICT DO NOTHING`` is used on SQLite too rather than
``INSERT OR IGNORE``: OR IGNORE would also skip rows that break NOT NULL, and a bad row must fail
the whole batch, not vanish.

Approaches measured for 1000-event batches (``bench/sql_write.py``, this 2-core machine, rows/s):

- SQLite: ``executemany`` of one statement 96-124k; one multi-row VALUES 83-110k (and capped by
  the bound-parameter limit). Chosen: executemany.
- PostgreSQL (psycopg 3.3): COPY into a temporary table then INSERT .. SELECT ON CONFLICT 73-83k
  (115k with raw psycopg); ``executemany``, which psycopg 3 sends as one pipeline, 72-77k (100k);
  INSERT .. SELECT FROM unnest(one array per column) 43-47k; one multi-row VALUES 32-40k.
  COPY and executemany are close in wall time alone, but COPY costs the client 1 ms of CPU per
  1000 rows against 5 ms for executemany (11 ms for unnest), and the recorder shares its process
  (and the GIL) with the event loop: COPY is chosen for batches of ``COPY_FROM_ROWS`` rows or more,
  executemany (one round trip) below. The temporary table lives per session and is emptied at
  commit; the connection's ``info`` remembers it, and forgets it when a transaction rolls back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import _schema as schema
from ._json import dumps
from ._records import Batch, EventRecord, Fence, LogLine, RunInfo, Snapshot
from .errors import LeaseLost, StoreError

_EVENT_COLS = "seq, id, run_id, type, version, ts, source, body, input_seq"
_RUN_COLS = "id, name, app_file, status, created_at, updated_at, message, last_seq, events"
_SNAPSHOT_COLS = "run_id, seq, state, fold"
_LOG_COLS = "seq, run_id, component, ts, stream, line"

# created_at is the run's birth: a later row never changes it.
_RUN_UPDATE = (
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, app_file = excluded.app_file,"
    " status = excluded.status, updated_at = excluded.updated_at, message = excluded.message,"
    " last_seq = excluded.last_seq, events = excluded.events WHERE excluded.last_seq >= runs.last_seq"
)
_SNAPSHOT_UPDATE = " ON CONFLICT (run_id, seq) DO UPDATE SET state = excluded.state, fold = excluded.fold"


def write_batch(conn: Connection, batch: Batch) -> None:
    """Write ``batch`` on ``conn``; the caller owns the transaction.

    Raises ``StoreError`` when a seq is already recorded with another event id: the JetStream
    stream was reset (a fresh NATS store) while the database kept its events, and ignoring the
    conflict would silently drop the new events.
    """
    pg = conn.dialect.name == "postgresql"
    sql = _statements("%s" if pg else "?")
    if batch.fence is not None:
        _check_fence(conn, batch.fence, pg, sql)
    if batch.events:
        rows = _event_rows(batch.events)
        if pg and len(rows) >= COPY_FROM_ROWS:
            inserted = _copy_insert(conn, "events", _EVENT_COLS, rows)
        else:
            inserted = conn.exec_driver_sql(sql["events"], rows).rowcount
        if inserted != len(rows):
            _check_known_seqs(conn, batch.events)
    if batch.runs:
        conn.exec_driver_sql(sql["runs"], _run_rows(batch.runs))
    if batch.snapshots:
        conn.exec_driver_sql(sql["snapshots"], _snapshot_rows(batch.snapshots))
    if batch.logs:
        rows = _log_rows(batch.logs)
        if pg and len(rows) >= COPY_FROM_ROWS:
            _copy_insert(conn, "logs", _LOG_COLS, rows)
        else:
            conn.exec_driver_sql(sql["logs"], rows)
    if batch.meta:
        conn.exec_driver_sql(sql["meta"], sorted(batch.meta.items()))


FENCE_KEY = "recorder"


def _check_fence(conn: Connection, fence: Fence, pg: bool, sql: dict[str, str]) -> None:
    """Take the recorder row (``fence.take``) or check that it names ``fence.holder``; raise
    ``LeaseLost`` naming the kernel that records instead. On PostgreSQL, one round trip for a check."""
    if pg:
        ms = str(max(1, round(fence.hold_s * 1000)))
        limits = "set_config('idle_in_transaction_session_timeout', %s, true), set_config('statement_timeout', %s, true)"
        if fence.take:
            conn.exec_driver_sql(f"SELECT {limits}", (ms, ms))
        else:
            row = conn.exec_driver_sql(
                f"SELECT value, {limits} FROM meta WHERE key = %s FOR SHARE", (ms, ms, FENCE_KEY)
            ).first()
    elif not fence.take:
        row = conn.exec_driver_sql("SELECT value FROM meta WHERE key = ?", (FENCE_KEY,)).first()
    if fence.take:
        conn.exec_driver_sql(sql["meta"], [(FENCE_KEY, fence.holder)])
        return
    if row is None or row[0] != fence.holder:
        who = f"kernel {row[0]}" if row is not None else "no kernel"
        raise LeaseLost(
            f"{who} records into this database now, not this kernel ({fence.holder}): batch not written"
        )


COPY_FROM_ROWS = 64
_STAGED = "lk_staged_tables"  # key in conn.info: the temporary tables this session has


def _copy_insert(conn: Connection, table: str, cols: str, rows: list[tuple[Any, ...]]) -> int:
    """COPY ``rows`` into a session's staging table, then insert the new ones; returns how many."""
    staging = f"lk_{table}_in"
    staged: set[str] = conn.info.setdefault(_STAGED, set())
    if staging not in staged:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {staging} (LIKE {table}) ON COMMIT DELETE ROWS")
        staged.add(staging)
        # Created in this transaction: gone again if it rolls back.
        sa.event.listen(conn, "rollback", lambda _conn: staged.discard(staging), once=True)
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)
    sql = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT DO NOTHING"
    return int(conn.exec_driver_sql(sql).rowcount)


@functools.cache
def _statements(mark: str) -> dict[str, str]:
    return {
        "events": f"INSERT INTO events ({_EVENT_COLS}) VALUES ({_marks(9, mark)}) ON CONFLICT DO NOTHING",
        "runs": f"INSERT INTO runs ({_RUN_COLS}) VALUES ({_marks(9, mark)}){_RUN_UPDATE}",
        "snapshots": f"INSERT INTO snapshots ({_SNAPSHOT_COLS}) VALUES ({_marks(4, mark)}){_SNAPSHOT_UPDATE}",
        "logs": f"INSERT INTO logs ({_LOG_COLS}) VALUES ({_marks(6, mark)}) ON CONFLICT DO NOTHING",
        "meta": f"INSERT INTO meta (key, value) VALUES ({_marks(2, mark)})"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    }


def _check_known_seqs(conn: Connection, events: list[EventRecord]) -> None:
    """Some events were known already: fine when known by their id, fatal when by their seq alone."""
    wanted = {e.seq: e.id for e in events}
    t = schema.events
    for i in range(0, len(events), 500):
        seqs = [e.seq for e in events[i : i + 500]]
        for seq, event_id in conn.execute(sa.select(t.c.seq, t.c.id).where(t.c.seq.in_(seqs))):
            if event_id != wanted[seq]:
                raise StoreError(
                    f"event seq {seq} is already recorded as event {event_id!r}, not {wanted[seq]!r}: the "
                    "JetStream stream was reset while this database kept its events; use the NATS store "
                    "that wrote them, or a fresh database"
                )


def _event_rows(events: Iterable[EventRecord]) -> list[tuple[Any, ...]]:
    return [
        (e.seq, e.id, e.run_id, e.type, e.version, float(e.ts), e.source, dumps(e.body), e.input_seq)
        for e in events
    ]


def _run_rows(runs: list[RunInfo]) -> list[tuple[Any, ...]]:
    # One row per id (the newest), so one statement never touches a row twice (PostgreSQL refuses).
    newest: dict[str, RunInfo] = {}
    for r in runs:
        old = newest.get(r.id)
        if old is None or r.last_seq >= old.last_seq:
            newest[r.id] = r
    return [
        (
            r.id,
            r.name,
            r.app_file,
            r.status,
            float(r.created_at),
            float(r.updated_at),
            r.message,
            r.last_seq,
            r.events,
        )
        for r in newest.values()
    ]


def _snapshot_rows(snapshots: list[Snapshot]) -> list[tuple[Any, ...]]:
    last = {(s.run_id, s.seq): s for s in snapshots}
    return [(s.run_id, s.seq, dumps(s.state), s.fold) for s in last.values()]


def _log_rows(logs: list[LogLine]) -> list[tuple[Any, ...]]:
    return [(g.seq, g.run_id, g.component, float(g.ts), g.stream, g.line) for g in logs]


def _marks(n: int, mark: str) -> str:
    return ", ".join([mark] * n)
