"""The data dir: its permissions, its lock, the files a running kernel leaves there, and a quick look
at its SQLite database.

Everything the kernel writes here is private: the folder is 0700 and the process's umask 077 (the
token files, ``kernel.db``, the pickled apps, the Works' folders). A kernel with an embedded NATS
holds ``kernel.lock`` (one kernel per data dir) and says in ``kernel.json`` how another command
(``stop``) reaches its NATS.

The quick look: a new run must not start before its database is known to fit the streams
(``_binding``), but opening the store means importing SQLAlchemy and, the first time, making the
schema (0.2-0.5 s here). For the data dir's own SQLite database the check is done with the standard
library's ``sqlite3`` instead (a few ms), and the store opens once the run is on its way.

A run may name that database before the database is made or bound to the streams: its id, and where
it starts in the streams, are written to ``kernel.db.pending`` first, so that a kernel killed before
its recorder bound the database leaves them to the next kernel, which would otherwise make another
id and start after the run's first events (``resume latest`` after a ``kill -9``: "no run 'latest'").
The file goes once the database is bound.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from ._bus import StreamState
    from ._config import Config
    from ._natsserver import Spawned

PENDING_FILE = "kernel.db.pending"


def shown_url(url: str) -> str:
    """``url`` with its password hidden (without importing SQLAlchemy, which costs 0.2-0.3 s)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class DataDir:
    """One kernel's data dir; ``db`` is the ``--db`` URL (None: the SQLite database in the folder)."""

    def __init__(self, path: str, db: str | None) -> None:
        self.path = path
        self.db = db
        self._lock_fd: int | None = None

    def secure(self) -> None:
        """0700, and what this process writes from now on 0600."""
        os.umask(0o077)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_uid == os.getuid():
                os.chmod(self.path, 0o700)

    def lock(self) -> None:
        """Hold ``kernel.lock``: one kernel with an embedded NATS per data dir."""
        path = os.path.join(self.path, "kernel.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another kernel is using the data dir {self.path}; wait for it, pass another "
                "--data-dir, or run `lightning-kernel serve` there and submit with --server"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def write_kernel_file(self, nats_url: str, nats_token: str | None, kernel_id: str) -> None:
        """How ``lightning-kernel stop`` in another shell reaches this kernel's NATS (0600: the token)."""
        path = os.path.join(self.path, "kernel.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "nats": nats_url, "token": nats_token, "kernel": kernel_id}, f)

    def remove_kernel_file(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.path, "kernel.json"))

    def private_database(self) -> None:
        """``kernel.db`` and its WAL files 0600, whoever made them."""
        if self.db is not None:
            return
        for name in os.listdir(self.path):
            if name.startswith("kernel.db"):
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(self.path, name), 0o600)

    # -- the quick look at the database --------------------------------------------------------------

    def quick_check(self, streams: dict[str, StreamState], where: str) -> str | None:
        """For the SQLite database of the data dir: check it against ``streams`` with the standard
        library alone, raising ``StreamMismatch`` as the recorder would; returns the database's id (a
        new one for a database that does not exist yet). None: no quick check for this database
        (``--db``, or an older schema): open the store first."""
        import sqlite3

        from ._binding import start_of

        if self.db is not None:
            return None
        path = os.path.join(self.path, "kernel.db")
        pending = self.read_pending(streams)
        if not os.path.exists(path):
            # Fresh: it records these streams from where they are now (or from where the kernel that
            # named it first, and died before it made it, said).
            return self.write_pending(pending, streams)
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return None
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            events = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
            logs = conn.execute("SELECT max(seq) FROM logs").fetchone()[0] or 0
        except sqlite3.Error:
            return None  # an older schema, or none yet: the store's own open migrates and checks
        finally:
            conn.close()
        for name, recorded in (("LK", events), ("LKLOG", logs)):
            state = streams[name]
            start_of(state, meta, int(recorded), state.last_seq, where)
        if "stream_id" in meta:
            from ._recorder import new_database_id

            return meta.get("db_id") or new_database_id()
        return self.write_pending(pending, streams, meta.get("db_id"))  # made, not bound yet

    def _pending_path(self) -> str:
        return os.path.join(self.path, PENDING_FILE)

    def read_pending(self, streams: dict[str, StreamState]) -> dict[str, Any] | None:
        """The pending binding of the data dir's database, if it is for these streams."""
        if self.db is not None:
            return None
        try:
            with open(self._pending_path()) as f:
                pending: dict[str, Any] = json.load(f)
            ids = {name: s["id"] for name, s in pending["streams"].items()}
            str(pending["db_id"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if ids != {name: s.id for name, s in streams.items()}:
            return None  # other streams (the JetStream store was removed): it says nothing of these
        return pending

    def write_pending(
        self, pending: dict[str, Any] | None, streams: dict[str, StreamState], db_id: str | None = None
    ) -> str:
        from ._recorder import new_database_id

        if pending is None:
            at = {name: {"id": s.id, "since": s.last_seq} for name, s in streams.items()}
            pending = {"db_id": db_id or new_database_id(), "streams": at}
        elif db_id is not None:
            pending["db_id"] = db_id
        path = self._pending_path()
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(pending, f)
        os.replace(path + ".tmp", path)
        return str(pending["db_id"])

    def bound(self) -> None:
        """The database is bound to the streams: the pending binding has served."""
        with contextlib.suppress(OSError):
            os.unlink(self._pending_path())


@dataclass
class EarlyStart:
    """What ``run app`` starts before it imports the kernel (~0.1-0.2 s of imports): the data dir,
    secured and locked, and the embedded nats-server, booting meanwhile."""

    data: DataDir
    nats: Spawned | None


def early_start(config: Config) -> EarlyStart:
    from ._natsserver import EmbeddedNats

    data = DataDir(config.data_dir, config.db)
    data.secure()
    nats = None
    if config.nats is None:
        data.lock()  # before the server touches the store: one kernel per data dir
        nats = EmbeddedNats.spawn(os.path.join(config.data_dir, "nats"))
    return EarlyStart(data, nats)
