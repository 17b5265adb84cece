"""``lightning-kernel diff``: what differs between two states of runs, for people and for scripts.

``diff_states(a, b)`` is pure: two folded states (``_projection``) in, one dict out. It compares what
a user reasons about: the run's status and app, each component's attributes, each Work's status and
calls (their stage, arguments and outcome, not their seqs: a fork's copy of a call has new ones),
and the Paths each Work persisted. What the fold does not keep comes from the events beside the
states, as ``facts(events)``: the newest ``path.persisted`` record of each Path (its size and
sha256), and the arguments of calls that finished (the fold drops them). ``render`` is the readable
form; ``--json`` prints the dict.

The dict: ``{"from": side, "to": side, "same": bool, "run": {field: {"from", "to"}},
"components": {"added": {name: {"kind", "vars"}}, "removed": {...}, "changed": {name: changes}},
"works": {name: {"status": {"from", "to"}, "calls": changes}}, "paths": {work: changes}}`` where
``changes`` is ``{"added": {key: value}, "removed": {key: value}, "changed": {key: {"from", "to"}}}``
(empty parts left out) and a side is ``{"run", "seq"}`` (seq 0: the empty state before any event).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._events import WorkRecord, WorkRunRequested
from ._records import EventRecord
from ._store import EventStore
from ._views import run_state

PERSISTED = "path.persisted"

RUN_FIELDS = ("name", "status", "message", "app_file", "app", "code", "stop_requested")
"""The fields of ``state["run"]`` that a diff compares (not its id, seq or creation time)."""

CALL_FIELDS = ("index", "stage", "args", "kwargs", "reason", "message")
"""What a diff compares of a call: not its seq nor its timestamp, which a fork's copy changes."""


def facts(records: Iterable[EventRecord]) -> dict[str, Any]:
    """What a state does not keep, from its events: ``{"paths": {work: {lit path: record}}, "args":
    {work: {call: {"args", "kwargs"}}}}``, the newest ``path.persisted`` of each Path and the
    arguments of each call (the fold drops those of a finished call).

    A Path's record is ``{"kind", "files", "bytes", "sha256", "manifest"}``; ``sha256`` is the file's
    for a file Path, the manifest's (a hash of every file's name, hash, size and mode) for a folder."""
    paths: dict[str, dict[str, dict[str, Any]]] = {}
    args: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r.type == WorkRunRequested.TYPE:
            b = r.body
            args.setdefault(str(b.get("work")), {})[str(b.get("call"))] = {
                "args": b.get("args"),
                "kwargs": b.get("kwargs"),
            }
        if r.type != WorkRecord.TYPE or r.body.get("kind") != PERSISTED:
            continue
        data = r.body.get("data") or {}
        work, lit = data.get("work") or r.body.get("work"), data.get("path")
        if not isinstance(work, str) or not isinstance(lit, str):
            continue
        sample = data.get("sample") or []
        single = data.get("kind") == "file" and len(sample) == 1
        paths.setdefault(work, {})[lit] = {
            "kind": data.get("kind"),
            "files": data.get("files"),
            "bytes": data.get("bytes"),
            "sha256": sample[0].get("sha256") if single else data.get("manifest"),
            "manifest": data.get("manifest"),
        }
    return {"paths": paths, "args": args}


FACT_TYPES = (WorkRecord.TYPE, WorkRunRequested.TYPE)
"""The event types ``facts`` reads."""


def _changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Keys added, removed and changed from ``a`` to ``b``; empty parts left out."""
    out: dict[str, Any] = {}
    added = {k: b[k] for k in b if k not in a}
    removed = {k: a[k] for k in a if k not in b}
    changed = {k: {"from": a[k], "to": b[k]} for k in a if k in b and a[k] != b[k]}
    for name, part in (("added", added), ("removed", removed), ("changed", changed)):
        if part:
            out[name] = part
    return out


def _call(call: Mapping[str, Any], args: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: call.get(k, (args or {}).get(k)) for k in CALL_FIELDS}


def _status(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: status.get(k, "") for k in ("stage", "reason", "message")}


def diff_states(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    facts_a: Mapping[str, Any] | None = None,
    facts_b: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What changed from state ``a`` to state ``b`` (either may be empty: before any event).

    ``facts_a``/``facts_b``: the ``facts`` of the events folded into each (Paths, calls' arguments)."""
    fa, fb = facts_a or {}, facts_b or {}
    run_a, run_b = a.get("run", {}), b.get("run", {})
    out: dict[str, Any] = {
        "from": {"run": run_a.get("id"), "seq": run_a.get("seq", 0)},
        "to": {"run": run_b.get("id"), "seq": run_b.get("seq", 0)},
    }
    run = {
        f: {"from": run_a.get(f), "to": run_b.get(f)}
        for f in RUN_FIELDS
        if run_a.get(f) != run_b.get(f) and (f in run_a or f in run_b)
    }
    comps_a, comps_b = a.get("components", {}), b.get("components", {})
    components: dict[str, Any] = {}
    added = {n: {"kind": c["kind"], "vars": c["vars"]} for n, c in comps_b.items() if n not in comps_a}
    removed = {n: {"kind": c["kind"], "vars": c["vars"]} for n, c in comps_a.items() if n not in comps_b}
    changed = {
        n: ch for n in comps_a if n in comps_b and (ch := _changes(comps_a[n]["vars"], comps_b[n]["vars"]))
    }
    for name, part in (("added", added), ("removed", removed), ("changed", changed)):
        if part:
            components[name] = part
    works: dict[str, Any] = {}
    works_a, works_b = a.get("works", {}), b.get("works", {})
    for name in sorted(set(works_a) | set(works_b)):
        wa, wb = works_a.get(name, {}), works_b.get(name, {})
        entry: dict[str, Any] = {}
        sa, sb = _status(wa.get("status", {})), _status(wb.get("status", {}))
        if sa != sb:
            entry["status"] = {"from": sa if wa else None, "to": sb if wb else None}
        args_a, args_b = fa.get("args", {}).get(name, {}), fb.get("args", {}).get(name, {})
        calls = _changes(
            {k: _call(c, args_a.get(k)) for k, c in wa.get("calls", {}).items()},
            {k: _call(c, args_b.get(k)) for k, c in wb.get("calls", {}).items()},
        )
        if calls:
            entry["calls"] = calls
        if entry:
            works[name] = entry
    paths: dict[str, Any] = {}
    pa, pb = fa.get("paths", {}), fb.get("paths", {})
    for work in sorted(set(pa) | set(pb)):
        ch = _changes(pa.get(work, {}), pb.get(work, {}))
        if ch:
            paths[work] = ch
    for key, part in (("run", run), ("components", components), ("works", works), ("paths", paths)):
        if part:
            out[key] = part
    out["same"] = not (run or components or works or paths)
    return out


# -- the runs' sides -----------------------------------------------------------------------------------


def side(store: EventStore, run_id: str, seq: int | None, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, facts)`` of ``run_id`` at ``seq`` (its latest when None; 0: before its first
    event, the empty state). ``name`` is the option the seq came from, for its errors."""
    if seq == 0:
        info = store.run(run_id)
        return {"run": {"id": info.id, "seq": 0}}, {}
    state = run_state(store, run_id, seq, name)
    return state, facts(store.events(state["run"]["id"], upto_seq=seq, types=FACT_TYPES))


def diff_runs(
    store: EventStore, run_a: str, run_b: str | None, from_seq: int | None, to_seq: int | None
) -> dict[str, Any]:
    """``diff RUN [--from] [--to]`` (one run at two seqs: from 0, the empty state, to the latest by
    default) and ``diff RUN_A RUN_B`` (``--from`` is RUN_A's seq, ``--to`` RUN_B's; latest by default)."""
    if run_b is None:
        a, pa = side(store, run_a, 0 if from_seq is None else from_seq, "--from")
        b, pb = side(store, run_a, to_seq, "--to")
    else:
        a, pa = side(store, run_a, from_seq, "--from")
        b, pb = side(store, run_b, to_seq, "--to")
    return diff_states(a, b, pa, pb)


# -- the readable form ---------------------------------------------------------------------------------


def _shown_paths(value: Any) -> Any:
    """``value`` with each Path's JSON form (``{"type": "__path__", ...}``) shown as its ``lit://``."""
    if isinstance(value, dict):
        if value.get("type") == "__path__" and isinstance(value.get("path"), str):
            return value["path"]
        return {k: _shown_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown_paths(v) for v in value]
    return value


def _v(value: Any, width: int = 70) -> str:
    """``value`` as JSON on one line, cut in the middle past ``width`` (paths differ at their end); a
    text of several lines by its last (a traceback's exception)."""
    if isinstance(value, str) and "\n" in value.strip():
        value = "... " + value.strip().splitlines()[-1]
    text = json.dumps(_shown_paths(value), separators=(",", ":"), default=str)
    if len(text) <= width:
        return text
    half = (width - 3) // 2
    return text[:half] + "..." + text[-half:]


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "? B"
    if n < 1024:
        return f"{n} B"
    shown = n / 1024
    for unit in ("KB", "MB"):
        if shown < 1024:
            return f"{shown:.1f} {unit}"
        shown /= 1024
    return f"{shown:.1f} GB"


def _path(rec: Mapping[str, Any]) -> str:
    files = rec.get("files")
    what = f"{files} file{'s' if files != 1 else ''}" if rec.get("kind") == "dir" else "file"
    return f"{what}, {_size(rec.get('bytes'))}, sha256 {str(rec.get('sha256') or '?')[:12]}"


def _shown(s: Mapping[str, Any]) -> str:
    return f"run {s['run']} at seq {s['seq']}" if s["seq"] else f"run {s['run']} before its first event"


def _stage(status: Mapping[str, Any] | None) -> str:
    if not status:
        return "(none)"
    why = status.get("reason") or ""
    return f"{status['stage']} ({why})" if why else str(status["stage"])


def _call_line(call_id: str, call: Mapping[str, Any]) -> str:
    return f"call #{call.get('index')} {call_id[:12]} args={_v(call.get('args'), 40)} {call.get('stage')}"


def _attrs(lines: list[str], ch: Mapping[str, Any], indent: str) -> None:
    for k, v in ch.get("added", {}).items():
        lines.append(f"{indent}+ {k} = {_v(v)}")
    for k, v in ch.get("removed", {}).items():
        lines.append(f"{indent}- {k} = {_v(v)}")
    for k, v in ch.get("changed", {}).items():
        lines.append(f"{indent}~ {k}: {_v(v['from'], 40)} -> {_v(v['to'], 40)}")


def render(diff: Mapping[str, Any]) -> str:
    """The diff for people: one block per component, ``+`` added, ``-`` removed, ``~`` changed."""
    lines = [f"from {_shown(diff['from'])}", f"  to {_shown(diff['to'])}"]
    if diff["same"]:
        lines.append("no difference")
        return "\n".join(lines)
    for f, v in diff.get("run", {}).items():
        lines.append(f"run {f}: {_v(v['from'], 50)} -> {_v(v['to'], 50)}")
    comps = diff.get("components", {})
    works = diff.get("works", {})
    paths = diff.get("paths", {})
    names = sorted(
        set(comps.get("added", {})) | set(comps.get("removed", {})) | set(comps.get("changed", {}))
    )
    names += sorted((set(works) | set(paths)) - set(names))
    for name in sorted(names):
        if name in comps.get("added", {}):
            c = comps["added"][name]
            lines.append(f"+ {name} ({c['kind']})")
            _attrs(lines, {"added": c["vars"]}, "    ")
        elif name in comps.get("removed", {}):
            lines.append(f"- {name} ({comps['removed'][name]['kind']})")
        else:
            lines.append(f"~ {name}")
            _attrs(lines, comps.get("changed", {}).get(name, {}), "    ")
        w = works.get(name, {})
        if "status" in w:
            lines.append(f"    status: {_stage(w['status']['from'])} -> {_stage(w['status']['to'])}")
        calls = w.get("calls", {})
        for k, c in calls.get("added", {}).items():
            lines.append(f"    + {_call_line(k, c)}")
        for k, c in calls.get("removed", {}).items():
            lines.append(f"    - {_call_line(k, c)}")
        for k, c in calls.get("changed", {}).items():
            lines.append(f"    ~ {_call_line(k, c['from'])} -> {c['to'].get('stage')}")
        p = paths.get(name, {})
        for lit, rec in p.get("added", {}).items():
            lines.append(f"    + {lit}  {_path(rec)}")
        for lit, rec in p.get("removed", {}).items():
            lines.append(f"    - {lit}  {_path(rec)}")
        for lit, rec in p.get("changed", {}).items():
            lines.append(f"    ~ {lit}  {_path(rec['from'])} -> {_path(rec['to'])}")
    return "\n".join(lines)
