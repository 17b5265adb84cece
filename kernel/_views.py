"""What ``runs``, ``history``, ``state`` and ``logs`` print: a table for people, ``--json`` for scripts.

The commands read through the SDK (``lightning_kernel.Client``), locally or from a ``serve``; the JSON
shapes here are also the HTTP API's (``run_json``, ``event_json``, ``log_json``, and their inverses).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ._events import RunCreated
from ._records import EventRecord, LogLine, RunInfo
from ._store import EventStore, load_state
from .errors import ComponentNotFound, ConfigError, ParameterError

if TYPE_CHECKING:
    from ._sdk import Client


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def run_json(r: RunInfo) -> dict[str, Any]:
    """A run as the CLI's --json and the HTTP API give it."""
    return {
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "last_seq": r.last_seq,
        "events": r.events,
        "app_file": r.app_file,
        "message": r.message,
    }


def event_json(e: EventRecord) -> dict[str, Any]:
    """An event as ``history --json`` and the HTTP API give it."""
    return {
        "seq": e.seq,
        "id": e.id,
        "type": e.type,
        "version": e.version,
        "ts": e.ts,
        "source": e.source,
        "body": e.body,
        "input_seq": e.input_seq,
    }


def log_json(line: LogLine) -> dict[str, Any]:
    """A log line as ``logs --json`` and the HTTP API give it."""
    return {
        "seq": line.seq,
        "component": line.component,
        "ts": line.ts,
        "stream": line.stream,
        "line": line.line,
    }


def run_from_json(d: dict[str, Any]) -> RunInfo:
    """``run_json``'s inverse (the SDK reads the HTTP API's runs with it)."""
    return RunInfo(
        id=d["id"],
        name=d["name"],
        app_file=d["app_file"],
        status=d["status"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        message=d.get("message", ""),
        last_seq=d.get("last_seq", 0),
        events=d.get("events", 0),
    )


def event_from_json(run_id: str, d: dict[str, Any]) -> EventRecord:
    """``event_json``'s inverse; the JSON does not repeat the run, whose id is ``run_id``."""
    return EventRecord(
        d["seq"],
        d["id"],
        run_id,
        d["type"],
        d["version"],
        d["ts"],
        d["source"],
        d["body"],
        d.get("input_seq", 0),
    )


def log_from_json(run_id: str, d: dict[str, Any]) -> LogLine:
    """``log_json``'s inverse."""
    return LogLine(d["seq"], run_id, d["component"], d["ts"], d["stream"], d["line"])


def print_runs(client: Client, as_json: bool, limit: int) -> None:
    runs = client.runs(limit=limit)
    if as_json:
        for r in runs:
            print(_j(run_json(r)))
        return
    if not runs:
        print("no runs yet: `lightning-kernel run app app.py` starts one")
        return
    print(f"{'RUN':<24} {'NAME':<20} {'STATUS':<12} {'STARTED':<19} {'EVENTS':>9}")
    for r in runs:
        print(f"{r.id:<24} {r.name[:20]:<20} {r.status:<12} {_ts(r.created_at):<19} {r.events:>9}")


def _summary(rec: Any) -> str:
    b = rec.body
    t = rec.type
    if t == "run.created":
        return f"{b['name']} ({len(b['components'])} components)"
    if t == "flow.state_changed":
        return " ".join(f"{c}.{k}={_j(v)}" for c, attrs in b["changes"].items() for k, v in attrs.items())
    if t == "work.state_changed":
        return f"{b['work']} " + " ".join(f"{k}={_j(v)}" for k, v in b["changes"].items())
    if t == "work.run_requested":
        return f"{b['work']} call {b['call']} args={_j(b['args'])} kwargs={_j(b['kwargs'])}"
    if t == "work.status_changed":
        extra = f" ({b['reason']})" if b.get("reason") else ""
        who = f" [worker {b['attempt']}]" if b.get("attempt") else ""
        return f"{b['work']} call {b['call']} {b['stage']}{extra}{who}"
    if t == "work.persist_requested":
        return f"{b['work']} {b['path']} (asked by {b['requester']}, request {b['request'][:8]})"
    if t == "work.record" and b["kind"] == "path.persist_answered":
        d = b["data"]
        done = "persisted" if d.get("persisted") else f"not persisted: {d.get('reason', '')}"
        return f"{b['work']} {b['kind']} {d.get('path', '')} {done} (request {str(d.get('request', ''))[:8]})"
    if t == "work.record":
        return f"{b['work']} {b['kind']} {_j(b['data'])}"
    if t == "work.worker_started":
        how = "re-attached" if b.get("attached") else "started"
        ref = " ".join(f"{k}={v}" for k, v in (b.get("ref") or {}).items())
        return f"{b['work']} worker {b['attempt']} {how} ({b['executor']}{', ' + ref if ref else ''})"
    if t == "work.worker_exited":
        return f"{b['work']} worker {b['attempt']} {b['cause']}: {b.get('message', '')}"
    if t == "component.added":
        cls = (b.get("spec") or {}).get("class", "")
        return f"{b['name']} ({b['kind']}{' ' + cls.rsplit('.', 1)[-1] if cls else ''}) " + " ".join(
            f"{k}={_j(v)}" for k, v in (b.get("vars") or {}).items()
        )
    if t == "work.endpoint":
        return f"{b['work']} {'serves at' if b.get('listening') else 'may serve at'} {b['url']}"
    if t == "flow.schedule_registered":
        start = f" from {_ts(b['start'])}" if b.get("start") is not None else ""
        return f"{b['flow']} {b['key']} cron {b['cron']!r}{start}"
    if t in ("flow.schedule_started", "flow.schedule_ticked", "flow.schedule_consumed"):
        return f"{b['flow']} {b['key']} at {_ts(b['at'])}"
    if t == "run.forked":
        return f"forked from {b['origin']} at seq {b['at']}" + (
            f" with {b['app_file']}" if b.get("app_file") else ""
        )
    if t == "event.unreadable":
        return f"unreadable ({b.get('size', '?')} bytes on {b.get('subject', '?')}): {b.get('error', '')}"
    if t in ("run.ended", "run.interrupted", "run.resumed", "run.stop_requested", "work.stop_requested"):
        return " ".join(str(v).splitlines()[0] if v else "" for v in b.values()).strip()
    return _j(b)


def _shown_summary(rec: Any) -> str:
    """``_summary``, or the body as JSON for an event whose body has not the shape of its type (a
    newer version, or a foreign client's): the table never fails on one event."""
    try:
        return _summary(rec)
    except (KeyError, TypeError, IndexError, AttributeError):
        return f"v{rec.version} {_j(rec.body)}"


def print_history(client: Client, run_id: str, as_json: bool, after: int, limit: int | None) -> None:
    for e in client.history(run_id, after, limit):
        if as_json:
            print(_j(event_json(e)))
        else:
            print(f"{e.seq:>8}  {_ts(e.ts)}  {e.source:<14} {e.type:<22} {_shown_summary(e)}"[:240])


def check_at(store: EventStore, info: RunInfo, at_seq: int, name: str = "--at") -> None:
    """Refuse an ``at`` sequence number outside ``info``'s events, naming the range it has.

    ``name`` is the option (``--at``) or query parameter (``at``) it came from."""

    def given(seq: int) -> str:
        return f"{name} {seq}" if name.startswith("-") else f"{name}={seq}"

    if at_seq <= 0:
        raise ParameterError(
            name,
            f"{given(at_seq)}: event sequence numbers start at 1; `lightning-kernel history {info.id}` "
            "lists the run's events",
        )
    if at_seq > info.last_seq:
        raise ParameterError(
            name,
            f"{given(at_seq)} is past run {info.id}'s last event (seq {info.last_seq}); "
            f"use {given(info.last_seq)} or leave it out for the state now",
        )
    first = store.events(info.id, limit=1)
    if first and at_seq < first[0].seq:
        raise ParameterError(
            name,
            f"{given(at_seq)} comes before run {info.id}'s first event (seq {first[0].seq}): sequence "
            f"numbers are shared by all runs; `lightning-kernel history {info.id}` lists this run's",
        )


def run_state(store: EventStore, run_id: str, at_seq: int | None, name: str = "--at") -> Any:
    """The state of ``run_id`` at ``at_seq`` (now when None), checked to be within its events."""
    info = store.run(run_id)
    if at_seq is not None:
        check_at(store, info, at_seq, name)
    state = load_state(store, info.id, upto_seq=at_seq)
    if not state:
        raise ConfigError(f"run {info.id} has no recorded run.created event: it cannot be folded")
    return state


def print_state(client: Client, run_id: str, at_seq: int | None, as_json: bool) -> None:
    state = client.state(run_id, at_seq)
    out = {
        "run": state.run,
        "root": state.root,
        # the calls the Work was asked (the fold keeps only those the semantics still need)
        "works": {n: {"status": w["status"], "calls": w["last_index"]} for n, w in state.works.items()},
    }
    print(json.dumps(out, indent=None if as_json else 2))


def check_component(store: EventStore, info: RunInfo, component: str) -> None:
    """Refuse a component name that ``info``'s app does not have, listing those it has."""
    created = store.events(info.id, limit=1, types=[RunCreated.TYPE])
    known = sorted(created[0].body.get("components", {})) if created else []
    if component not in known:
        raise ComponentNotFound(info.id, component, known)


def print_logs(client: Client, run_id: str, component: str | None, as_json: bool) -> None:
    for line in client.logs(run_id, component):
        if as_json:
            print(_j(log_json(line)))
        else:
            print(f"{line.component}: {line.line}" if component is None else line.line)
