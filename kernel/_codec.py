"""The codec between events and their wire and SQL forms: pure functions, tested without sockets.

``encode`` makes a payload (the envelope and the JSON body) and ``decode_record`` reads one back;
``read_record`` keeps a payload nobody can decode as an ``event.unreadable`` record instead of raising,
and ``live_record`` also turns an event that cannot become its type (a newer version) into one, for
the code that acts on events as they arrive. ``to_event`` upcasts old versions (``UPCASTERS``), so the
fold only ever sees the newest version of each type. ``check_size`` keeps state and arguments within
what NATS carries in one message.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from . import _json
from ._events import EVENT_TYPES, UNREADABLE, Event
from ._records import JSON, EventRecord
from .errors import EventError, PayloadTooLarge

Upcaster = Callable[[dict[str, JSON]], dict[str, JSON]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(type, version) -> body of version + 1``; registered as event types evolve."""


ENVELOPE_BYTES = 2048
"""Room kept for the envelope (id, run, type, timestamps, the call) beside a body's values."""


def check_size(where: str, values: dict[str, JSON], limit: int, extra: int = 0) -> None:
    """Raise ``PayloadTooLarge`` naming the biggest of ``values`` (the attributes of ``where``) when
    they, as JSON and with ``extra`` bytes more, would not fit in one NATS message of ``limit`` bytes."""
    if limit <= 0:
        return
    size = len(_json.dumps(values)) + extra
    if size + ENVELOPE_BYTES <= limit:
        return
    sizes = {k: len(_json.dumps(v)) for k, v in values.items()}
    biggest = max(sizes, key=lambda k: sizes[k]) if sizes else ""
    raise PayloadTooLarge(where, str(biggest), size, limit - ENVELOPE_BYTES)


def new_event_id() -> str:
    return os.urandom(12).hex()


def encode(
    event: Event,
    run_id: str,
    source: str,
    event_id: str | None = None,
    attempt: int = 0,
    input_seq: int = 0,
) -> tuple[str, str, bytes]:
    """``(subject, event id, payload)`` for publishing ``event``. A pure function. ``attempt`` stamps a
    worker's events (those with an ``attempt`` field left at 0) with the worker's attempt; ``input_seq``
    marks an event of a flow iteration with the seq of the state it ran on."""
    eid = event_id or new_event_id()
    body = event.body()
    if attempt and body.get("attempt") == 0:
        body["attempt"] = attempt
    payload = {
        "id": eid,
        "run": run_id,
        "type": event.TYPE,
        "v": event.VERSION,
        "ts": time.time(),
        "src": source,
        "body": body,
    }
    if input_seq:
        payload["in"] = input_seq
    try:
        data = _json.dumps_strict(payload)
    except (TypeError, ValueError) as exc:
        raise EventError(f"event {event.TYPE} of run {run_id} has a body that is not JSON: {exc}") from exc
    return event.subject(run_id), eid, data


def decode_record(data: bytes, seq: int) -> EventRecord:
    """The record of a payload published with ``encode``, at stream sequence ``seq``."""
    try:
        p = _json.loads(data)
        record = EventRecord(
            seq=seq,
            id=p["id"],
            run_id=p["run"],
            type=p["type"],
            version=p["v"],
            ts=p["ts"],
            source=p["src"],
            body=p["body"],
            input_seq=p.get("in", 0),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise EventError(f"message at stream sequence {seq} is not a lightning-kernel event: {exc}") from exc
    shape = (
        isinstance(record.id, str)
        and isinstance(record.run_id, str)
        and isinstance(record.type, str)
        and isinstance(record.version, int)
        and isinstance(record.ts, (int, float))
        and isinstance(record.source, str)
        and isinstance(record.body, dict)
        and isinstance(record.input_seq, int)
    )
    if not shape:
        raise EventError(f"message at stream sequence {seq} has an envelope of the wrong types")
    return record


def unreadable_record(subject: str, data: bytes, seq: int, error: str) -> EventRecord:
    """The record kept for a payload at ``seq`` that is not a lightning-kernel event. Deterministic (no
    clock), so the recorder and the live loop make the same one; the run is the subject's."""
    parts = subject.split(".")
    run_id = parts[1] if len(parts) > 2 and parts[0] == "lk" else ""
    text = data[:2048].decode("utf-8", errors="replace")
    body: dict[str, JSON] = {"subject": subject, "error": error, "size": len(data), "data": text}
    return EventRecord(
        seq=seq,
        id=f"unreadable-{seq}",
        run_id=run_id,
        type=UNREADABLE,
        version=1,
        ts=0.0,
        source="",
        body=body,
    )


def read_record(subject: str, data: bytes, seq: int) -> EventRecord:
    """``decode_record``, or the unreadable record of the payload when it cannot be decoded."""
    try:
        record = decode_record(data, seq)
    except EventError as exc:
        return unreadable_record(subject, data, seq, str(exc))
    parts = subject.split(".")
    if len(parts) > 2 and parts[0] == "lk" and parts[1] != record.run_id:
        # An event may only speak for the run whose subject it was published on.
        error = f"event of run {record.run_id!r} published on {subject}"
        return unreadable_record(subject, data, seq, error)
    return record


_BODY_KEYS: dict[type[Event], tuple[frozenset[str], frozenset[str]]] = {}
"""Each event class's ``(required, allowed)`` body keys, once."""


def _body_keys(cls: type[Event]) -> tuple[frozenset[str], frozenset[str]]:
    keys = _BODY_KEYS.get(cls)
    if keys is None:
        fields = dataclasses.fields(cls)
        required = frozenset(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        keys = _BODY_KEYS[cls] = (required, frozenset(f.name for f in fields))
    return keys


def live_record(subject: str, data: bytes, seq: int) -> EventRecord:
    """``read_record`` for those who act on events as they come (the flow loop, workers): an event
    of a known type that cannot become its event (a newer version, a body that does not fit) is
    handed on as the unreadable record of its payload, so nobody reads fields it does not have. The
    fold treats both alike (the run's ``unreadable``), so the live state is the recorded one's."""
    record = read_record(subject, data, seq)
    cls = EVENT_TYPES.get(record.type)
    if cls is None:
        return record  # unknown or unreadable already: the fold ignores it
    if record.version == cls.VERSION:
        required, allowed = _body_keys(cls)
        keys = record.body.keys()
        if required <= keys and keys <= allowed:
            return record  # the common case, checked without building the event
    try:
        to_event(record)
    except EventError as exc:
        return unreadable_record(subject, data, seq, str(exc))
    return record


def to_event(record: EventRecord) -> Event:
    """The typed event of ``record``, upcast to the newest version of its type."""
    cls = EVENT_TYPES.get(record.type)
    if cls is None:
        raise EventError(
            f"event {record.seq} of run {record.run_id} has unknown type {record.type!r}; "
            "is this kernel older than the one that wrote it?"
        )
    body, version = record.body, record.version
    while version < cls.VERSION:
        step = UPCASTERS.get((record.type, version))
        if step is None:
            raise EventError(f"no upcaster for {record.type} v{version} (event {record.seq})")
        body, version = step(body), version + 1
    if version > cls.VERSION:
        raise EventError(
            f"event {record.seq} is {record.type} v{version}, newer than this kernel's v{cls.VERSION}"
        )
    try:
        return cls(**body)
    except TypeError as exc:
        raise EventError(f"event {record.seq} ({record.type}) has a body that does not fit: {exc}") from exc
