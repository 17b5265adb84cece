"""The OpenAPI 3.1 description of ``serve``'s HTTP API, served at ``GET /api/openapi.json``.

Written by hand, beside the routes of ``_api``: a test checks that it lists every route with its
methods, and no route that is not there. Tried and left: Starlette's ``SchemaGenerator``, which reads
YAML out of each endpoint's docstring (the same text by hand, in a format nothing checks, and the
closures of ``make_app`` have no docstrings to read).
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

_RUN = {"name": "run", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN["description"] = "a run id, or `latest` (the newest run)"


def _int(name: str, description: str, minimum: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "integer", "minimum": minimum},
        "description": description,
    }


def _str(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string"}, "description": description}


_AFTER = _int("after", "only what comes after this sequence number")
_LIMIT = _int("limit", "at most this many (1 to 10000)", 1)
_WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "number", "minimum": 0, "maximum": 60},
    "description": "long-poll: answer as soon as there is something, or after this many seconds",
}
_COMPONENT = _str("component", "one component's lines: root, root.w_1, ...")


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


_ERRORS = {
    "400": _json(_ref("Error"), "a bad parameter (`parameter` names it) or request"),
    "401": _json(_ref("Error"), "the token is missing (writes; reads beyond loopback) or wrong"),
    "403": _json(_ref("Error"), "a cross-origin request, or a Host that is not this server"),
    "404": _json(_ref("Error"), "no such run (`kind`: RunNotFound) or component (ComponentNotFound)"),
}
_STREAM = {
    "description": (
        "server-sent events: `event: event` (or `log`) messages with `id: <seq>` and the record as JSON "
        "`data`, `: keep-alive` comments when idle, and a last `event: end` with the run's status once it "
        "ended. Reconnect with `Last-Event-ID` (or `after`) to carry on."
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _op(summary: str, responses: dict[str, Any], params: list[Any] | None = None, **extra: Any) -> Any:
    return {"summary": summary, "parameters": params or [], "responses": {**responses, **_ERRORS}, **extra}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": schema}}}


def _object(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_SEQ = {"type": "integer", "minimum": 0}
_S = {"type": "string"}

SCHEMAS: dict[str, Any] = {
    "Error": _object(error=_S, kind=_S, parameter=_S, run=_S),
    "Run": _object(
        id=_S,
        name=_S,
        status={"type": "string", "enum": ["running", "interrupted", "succeeded", "failed", "stopped"]},
        created_at={"type": "number"},
        updated_at={"type": "number"},
        last_seq=_SEQ,
        events={"type": "integer", "description": "how many events the run has"},
        app_file=_S,
        message=_S,
    ),
    "Event": _object(
        seq=_SEQ,
        id=_S,
        type=_S,
        version={"type": "integer"},
        ts={"type": "number"},
        source=_S,
        body={"type": "object"},
        input_seq=_SEQ,
    ),
    "LogLine": _object(seq=_SEQ, component=_S, ts={"type": "number"}, stream=_S, line=_S),
    "State": _object(run={"type": "object"}, root={"type": "object"}, works={"type": "object"}),
}


def spec() -> dict[str, Any]:
    run = "/api/runs/{run}"
    paths: dict[str, Any] = {
        "/api/runs": {
            "get": _op("the runs, newest first", {"200": _json(_list("Run"), "the runs")}, [_LIMIT]),
            "post": _op(
                "submit an app: the body is a cloudpickled LightningApp (needs the token)",
                {"201": _json(_object(id=_S), "the new run's id")},
                [
                    {"name": h, "in": "header", "schema": _S, "description": d}
                    for h, d in (
                        ("X-LK-App-File", "the app file's path, for the run's record"),
                        ("X-LK-Name", "the run's name"),
                        ("X-LK-Code", "the code artifact (POST /api/code) the app's classes come from"),
                        ("X-LK-Module", "the app module's name in that artifact"),
                        ("X-LK-Entry", "the app file's path in that artifact"),
                    )
                ],
                requestBody={"required": True, "content": {"application/octet-stream": {}}},
            ),
        },
        "/api/code": {
            "post": _op(
                "upload an app's folder (lightning_kernel._code.pack) as a code artifact",
                {"201": _json(_object(ref=_S), "the artifact's reference")},
                requestBody={"required": True, "content": {"application/octet-stream": {}}},
            )
        },
        run: {"get": _op("one run", {"200": _json(_ref("Run"), "the run")}, [_RUN])},
        f"{run}/state": {
            "get": _op(
                "the run's state, folded from its events",
                {"200": _json(_ref("State"), "the state")},
                [_RUN, _int("at", "the state just after this event (a seq of the run)", 1)],
            )
        },
        f"{run}/events": {
            "get": _op(
                "the run's events (its history), oldest first",
                {"200": _json(_list("Event"), "the events")},
                [_RUN, _AFTER, _LIMIT, _WAIT],
            )
        },
        f"{run}/events/stream": {
            "get": _op("the run's events as they are recorded, to its end", {"200": _STREAM}, [_RUN, _AFTER])
        },
        f"{run}/logs": {
            "get": _op(
                "what the run's components printed",
                {"200": _json(_list("LogLine"), "the lines")},
                [_RUN, _AFTER, _COMPONENT, _LIMIT, _WAIT],
            )
        },
        f"{run}/logs/stream": {
            "get": _op(
                "the run's log lines as they come, to its end", {"200": _STREAM}, [_RUN, _AFTER, _COMPONENT]
            )
        },
        f"{run}/stop": {
            "post": _op(
                "stop the run: its Works stop, it ends as `stopped` (needs the token)",
                {
                    "202": _json(_object(id=_S, stop_requested={"type": "boolean"}), "asked"),
                    "409": _ERRORS["400"],
                },
                [_RUN],
            )
        },
        f"{run}/resume": {
            "post": _op(
                "carry on a run that did not end, here (needs the token)",
                {"202": _json(_object(id=_S, resumed={"type": "boolean"}), "resumed"), "409": _ERRORS["400"]},
                [_RUN],
            )
        },
        f"{run}/replay": {
            "post": _op(
                "re-run the run's flow code against its history; starts no Work (needs the token)",
                {"200": _json({"type": "object"}, "iterations, events, ok, differences")},
                [_RUN],
                requestBody=_body(_object(until=_SEQ)),
            )
        },
        f"{run}/diff": {
            "get": _op(
                "the state difference of the run between two seqs, or with another run",
                {"200": _json({"type": "object"}, "from, to, run, components, works, paths, same")},
                [
                    _RUN,
                    _str("other", "the run to compare with"),
                    _int("from", "this run's seq (0: before its first event)"),
                    _int("to", "the seq of the run compared with (its latest by default)"),
                ],
            )
        },
        f"{run}/fork": {
            "post": _op(
                "a new run that starts as this run's events up to `at`, then goes on live (needs the token)",
                {"201": _json(_object(id=_S, origin=_S, at=_SEQ), "the fork")},
                [_RUN],
                requestBody={"required": True, "content": {"application/json": {"schema": _object(at=_SEQ)}}},
            )
        },
        "/api/openapi.json": {
            "get": _op("this description", {"200": _json({"type": "object"}, "OpenAPI 3.1")})
        },
        "/view": {
            "get": _op(
                "a page listing the runs (`?token=` sets the token's cookie); under `run app`, its run's page",
                {"200": {"description": "HTML", "content": {"text/html": {}}}},
            )
        },
        "/api/runs/stream": {
            "get": _op(
                "the runs as server-sent `runs` messages (a list of Run), again whenever they change",
                {"200": _STREAM},
                [_LIMIT],
            )
        },
        f"{run}/manifests/{{ref}}": {
            "get": _op(
                "what a Path of the run held when it was persisted (a manifest a path.persisted record "
                "names): path, origin, kind, files {name: {sha256, size, mode}}",
                {"200": _json({"type": "object"}, "the manifest"), "404": {"description": "not the run's"}},
                [_RUN, {"name": "ref", "in": "path", "required": True, "schema": _S}],
            )
        },
        f"{run}/manifests/{{ref}}/files/{{name}}": {
            "get": _op(
                "one file of that manifest, as an attachment (its bytes checked against their sha256)",
                {"200": {"description": "the file", "content": {"application/octet-stream": {}}}},
                [
                    _RUN,
                    {"name": "ref", "in": "path", "required": True, "schema": _S},
                    {"name": "name", "in": "path", "required": True, "schema": _S},
                ],
            )
        },
        f"{run}/layout": {
            "get": _op(
                "the tabs of the run's configure_layout(), for a run this server drives",
                {
                    "200": _json(
                        _object(run=_S, hosted={"type": "boolean"}, tabs={"type": "array"}), "the tabs"
                    )
                },
                [_RUN],
            )
        },
        "/_lk/ui/{file}": {
            "get": _op(
                "a file of the web UI (its script, styles, icon)",
                {"200": {"description": "the file"}},
                [{"name": "file", "in": "path", "required": True, "schema": _S}],
            )
        },
        "/runs/{run}/view": {
            "get": _op(
                "the run's page (the web UI): its tree, history, logs, and the tabs of its flow's "
                "configure_layout() when this server drives it",
                {"200": {"description": "HTML", "content": {"text/html": {}}}},
                [_RUN],
            )
        },
        "/runs/{run}/commands": {
            "get": _op(
                "the run's commands (configure_commands()) and their arguments; every other "
                "/runs/{run}/... path is a route of the run's flow (configure_api(), POST command/<name>)",
                {"200": _json({"type": "object"}, "run, commands: [{name, description, params, client}]")},
                [_RUN],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lightning-kernel",
            "version": __version__,
            "description": (
                "The HTTP API of `lightning-kernel serve`. Writes need `Authorization: Bearer <token>` (the "
                "token is in <data dir>/server.token); reads need it too when the server listens beyond "
                "loopback. Cross-origin requests are refused. `lightning_kernel.Client(url)` wraps it."
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}, {}],
        "paths": paths,
    }
