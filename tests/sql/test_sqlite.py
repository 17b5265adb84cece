"""SQLite specifics: the file and its folder are created, WAL mode, the default URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lightning_kernel._records import Batch, EventRecord
from lightning_kernel._sql import default_sqlite_url, open_store


def test_default_url_is_kernel_db_in_the_data_dir(tmp_path: Path) -> None:
    url = default_sqlite_url(str(tmp_path / "data"))
    assert url == f"sqlite:///{tmp_path}/data/kernel.db"
    open_store(url).close()
    assert (tmp_path / "data" / "kernel.db").is_file()


def test_wal_mode_and_committed_rows_are_visible_to_plain_sqlite(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        store.write(Batch(events=[EventRecord(1, "e1", "r", "T", 1, 0.5, "root", {"a": [1]})]))
        path = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("SELECT seq, id, body FROM events").fetchall() == [(1, "e1", '{"a":[1]}')]
    finally:
        store.close()


def test_in_memory_database_is_shared_by_threads() -> None:
    import threading

    store = open_store("sqlite://")
    try:
        t = threading.Thread(
            target=store.write, args=(Batch(events=[EventRecord(1, "e1", "r", "T", 1, 0.0, "x", {})]),)
        )
        t.start()
        t.join()
        assert [e.id for e in store.events("r")] == ["e1"]
    finally:
        store.close()
