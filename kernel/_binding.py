"""Which stream a database records, and from where: pure decisions over the meta table and the stream.

A database records one event stream (and one log stream), known by the id the kernel put in the
stream's metadata when it made it, up to a position it commits with every batch (``meta``:
``stream_id``/``position``, ``log_stream_id``/``log_position``). At start the recorder compares:

- the same stream, holding every event after the position: carry on from there;
- the same stream, whose first events after the position are gone (limits dropped them unrecorded):
  a gap, named by its sequence numbers;
- another stream (the JetStream store was removed, or this is another NATS), or a stream holding less
  than the database recorded: the database would record runs without their beginning, or mix two
  streams' sequence numbers; it refuses, naming both, and ``lightning-kernel db adopt-stream`` is the
  way on (past runs stay readable);
- a database that records no stream yet: it takes this one, from ``since`` (the stream's last sequence
  when the kernel connected, before it published anything), or from the first event.

A database from before the meta table (events, no ``stream_id``) counts its newest event as its
position and takes the stream if the stream still holds what follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bus import StreamState
from .errors import StreamMismatch

KEYS = {"LK": ("stream_id", "position"), "LKLOG": ("log_stream_id", "log_position")}


@dataclass(frozen=True)
class Start:
    """Where a recorder starts in one stream, and the meta rows to write once it starts."""

    stream: str
    first_seq: int
    """The first sequence to record."""
    meta: dict[str, str]


def start_of(
    stream: StreamState, meta: dict[str, str], recorded_max: int, since: int | None, where: str
) -> Start:
    """Where to record ``stream`` from; ``recorded_max`` is the newest seq of it the database holds
    (its events or log lines), ``where`` names the database and the NATS for messages."""
    id_key, pos_key = KEYS[stream.name]
    bound = meta.get(id_key)
    position = int(meta.get(pos_key, recorded_max))
    fresh = bound is None and recorded_max == 0
    what = "event" if stream.name == "LK" else "log"
    if fresh:
        first = (since + 1) if since is not None else max(stream.first_seq, 1)
        return Start(stream.name, first, {id_key: stream.id, pos_key: str(first - 1)})
    if bound is not None and bound != stream.id:
        raise StreamMismatch(
            f"{where}: the database records the {what} stream {bound} (up to seq {position}), but NATS holds "
            f"another one, {stream.id} ({_range(stream)}): its JetStream store was removed or reset, or "
            "this is another NATS. Use the NATS that wrote the database, or another --db; "
            "`lightning-kernel db adopt-stream` makes this database record the new stream "
            "(its past runs stay readable; unfinished ones cannot resume)"
        )
    if stream.last_seq < position:
        raise StreamMismatch(
            f"{where}: the database recorded the {what} stream up to seq {position}, but the stream on NATS "
            f"ends at seq {stream.last_seq} ({_range(stream)}): it was reset or its store removed; "
            "`lightning-kernel db adopt-stream` makes this database record the new stream"
        )
    if stream.messages and stream.first_seq > position + 1:
        raise StreamMismatch(
            f"{where}: {what} events {position + 1}..{stream.first_seq - 1} were dropped from the stream "
            f"before this database recorded them (the stream now holds {_range(stream)}); runs that "
            "were active then are incomplete. `lightning-kernel db adopt-stream` records from "
            f"seq {stream.first_seq} on"
        )
    return Start(stream.name, position + 1, {id_key: stream.id, pos_key: str(position)})


def _range(stream: StreamState) -> str:
    if not stream.messages:
        return "no events yet" if stream.last_seq == 0 else f"no events, next seq {stream.last_seq + 1}"
    return f"seqs {stream.first_seq}..{stream.last_seq}"
