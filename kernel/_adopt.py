"""``lightning-kernel db adopt-stream``: make a database record the streams NATS holds now.

A database records one event stream and one log stream (``_binding``). When their JetStream store was
removed, NATS reset, or limits dropped events before they were recorded, the kernel refuses to start
rather than record runs without their beginning. This is the way on, for a user who accepts the loss:

- a stream that holds nothing yet is made anew, numbering from after the newest sequence the database
  holds, so old and new events never share a sequence number;
- a stream whose events all come after what the database holds is taken as it is;
- a stream with a gap is taken from its first event;
- a stream whose events reuse sequence numbers the database holds is refused (remove it, or point
  ``--nats`` at an empty server, then adopt again).

Runs that were not finished and whose events are no longer all in the stream cannot resume (their
Works read their commands from the stream); their history stays readable.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from ._binding import KEYS
from ._bus import Bus, StreamState
from ._config import Config
from ._events import EVENT_STREAM, LOG_STREAM
from ._store import EventStore
from .errors import ConfigError, StreamMismatch


@dataclass(frozen=True)
class Adoption:
    stream: str
    action: str
    """``kept``, ``recreated``, ``taken`` or ``gap accepted``."""
    first_seq: int
    position: int


def plan(stream: StreamState, meta: dict[str, str], recorded_max: int) -> tuple[str, int]:
    """``(action, position)`` for one stream: what to do with it and from where to record it."""
    id_key, pos_key = KEYS[stream.name]
    bound = meta.get(id_key)
    position = int(meta.get(pos_key, recorded_max))
    newest = max(position, recorded_max)
    if bound == stream.id and not (stream.messages and stream.first_seq > position + 1):
        return "kept", position
    if bound == stream.id:
        return "gap accepted", stream.first_seq - 1
    if stream.messages == 0:
        return "recreated", newest
    if stream.first_seq > newest:
        return "taken", stream.first_seq - 1
    raise StreamMismatch(
        f"the {stream.name} stream on NATS holds seqs {stream.first_seq}..{stream.last_seq}, numbers this "
        f"database already uses (it holds events up to seq {newest}): adopting it would mix two streams. "
        "Remove that stream (for the embedded NATS: the data dir's nats/ folder), or point --nats at an "
        "empty server, then run `lightning-kernel db adopt-stream` again"
    )


async def adopt(bus: Bus, store: EventStore) -> list[Adoption]:
    from ._records import Batch

    meta = await asyncio.to_thread(store.meta)
    maxima = {
        EVENT_STREAM: await asyncio.to_thread(store.max_seq),
        LOG_STREAM: await asyncio.to_thread(store.max_log_seq),
    }
    states = await bus.ensure_streams()
    done = []
    rows: dict[str, str] = {}
    for name in (EVENT_STREAM, LOG_STREAM):
        action, position = plan(states[name], meta, maxima[name])
        state = states[name]
        if action == "recreated":
            state = await bus.recreate_stream(name, position + 1)
        id_key, pos_key = KEYS[name]
        rows[id_key], rows[pos_key] = state.id, str(position)
        done.append(Adoption(name, action, max(state.first_seq, position + 1), position))
    await asyncio.to_thread(store.write, Batch(meta=rows))
    return done


def adopt_stream(config: Config) -> None:
    """The command: with the embedded NATS of the data dir (no kernel may run there) or ``--nats``."""
    from ._datadir import DataDir
    from ._natsserver import EmbeddedNats
    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

    async def main() -> None:
        store = open_store(config.db_url, create=False)
        server = None
        lock = DataDir(config.data_dir, config.db)
        try:
            token: str | None
            if config.nats is None:
                lock.lock()
                server = await asyncio.to_thread(EmbeddedNats.start, os.path.join(config.data_dir, "nats"))
                url, token = server.url, server.token
            elif config.nats.startswith(("nats://", "tls://", "ws://", "wss://")) or "://" not in config.nats:
                url, token = config.nats, config.nats_token
            else:
                raise ConfigError(f"--nats {config.nats!r} is not a NATS URL")
            bus = await Bus.connect(url, token, name="lightning-kernel-adopt")
            try:
                for a in await adopt(bus, store):
                    what = "events" if a.stream == EVENT_STREAM else "log lines"
                    print(
                        f"{a.stream}: {a.action}; this database records its {what} from seq {a.first_seq}",
                        file=sys.stderr,
                    )
            finally:
                await bus.close()
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)
            lock.unlock()
            store.close()

    asyncio.run(main())
