"""The flow side of its HTTP API and commands: a request is an event, answered by the run's loop.

The server publishes ``flow.request_received``; the loop, when it folds that event, runs the handler
on the live flow objects hydrated from the state at that event (``answer``), diffs the flow's state
as an iteration does, and publishes the change and ``flow.request_answered``, both stamped with the
request's seq as ``input_seq``. The replayer calls the same ``answer`` on the same state, so a run
that served requests replays as every iteration does: the handler's state changes and answers are
compared with what the run recorded.

Tried and left: answering on the server, with the handler called from the HTTP task (Lightning App's
own shape, the handler running between iterations): the change it makes would be nobody's event, and
a replay could not re-compute it. Holding a request until the loop's own last events are back (as
``root.run()`` waits): the handler's state would then be that of a later seq than the request's, which
the replayer cannot know; a handler sees the state at its request, and a change of the iteration that
is still on its way lands after it (each is a diff of what it changed).

Answers: 200 and the handler's JSON; 404 for a route or command the flow does not declare; 422 for
arguments that do not fit the handler; 500 with ``"<Error>: <message>"`` when the handler raises
(the run goes on; the traceback goes to the flow's log) or returns what is not JSON.
"""

from __future__ import annotations

import copy
import functools
import sys
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any

from ._app import LightningApp
from ._commands import command_route, commands_of, handler_of
from ._dispatch import Blocked
from ._events import Event, FlowRequestAnswered, FlowRequestReceived, RunEnded
from ._flow import AppFail, AppStop, LightningFlow, configured
from ._http_methods import METHODS, BadArguments, HttpMethod, bind, to_response
from ._iteration import FlowInterrupted, FlowIteration
from ._records import EventRecord
from ._tee import LineTee
from .errors import KernelError

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Route:
    method: str
    route: str
    handler: Any
    timeout: float = DEFAULT_TIMEOUT_S
    command: str = ""
    """The command's name, for ``POST /command/<name>``."""


class Routes:
    """What an app answers: its flows' ``configure_api()`` routes and ``configure_commands()``."""

    def __init__(self, app: LightningApp) -> None:
        flows = [c for c in app.components.values() if isinstance(c, LightningFlow)]
        self.by_key: dict[tuple[str, str], Route] = {}
        for flow in flows:
            for spec in configured(flow, "configure_api") or []:
                if not isinstance(spec, HttpMethod) or spec.http not in METHODS:
                    raise KernelError(
                        f"{flow.name}.configure_api() must return lightning_kernel.api.Get/Post/Put/Delete "
                        f"objects, got {spec!r}"
                    )
                self.by_key[(spec.http, spec.route)] = Route(spec.http, spec.route, spec.method, spec.timeout)
        # What Lightning App's AppState (``utilities.state``) writes: a flow's attributes, from a UI.
        self.by_key[("POST", STATE_ROUTE)] = Route("POST", STATE_ROUTE, functools.partial(set_state, app))
        self.commands = commands_of(flows)
        for name, target in self.commands.items():
            route = command_route(name)
            self.by_key[("POST", route)] = Route("POST", route, handler_of(target), command=name)

    def find(self, method: str, route: str) -> Route | None:
        return self.by_key.get((method.upper(), route))

    def knows(self, route: str) -> bool:
        return any(r == route for _, r in self.by_key)

    def __bool__(self) -> bool:
        return bool(self.by_key)


STATE_ROUTE = "/__lk__/state"
"""The flow route that sets a flow's public attributes (``AppState``'s writes), as an event like any
request: the change is the handler's, recorded, replayed."""


def set_state(app: LightningApp, component: str, changes: dict) -> dict[str, Any]:
    """Set public attributes of the flow ``component`` (``root``, ``root.child``); each must exist."""
    comp = app.components.get(component)
    if not isinstance(comp, LightningFlow):
        flows = ", ".join(n for n, c in app.components.items() if isinstance(c, LightningFlow))
        raise BadArguments(
            f"{component!r} is no flow of this app (its flows: {flows}); only flows' state is set"
        )
    known = comp._lk_vars()
    for name in changes:
        if name.startswith("_") or name not in known:
            raise BadArguments(
                f"{component} has no public attribute {name!r} (it has: {', '.join(sorted(known))})"
            )
    for name, value in changes.items():
        setattr(comp, name, value)
    return {"component": component, "changed": sorted(changes)}


_ROUTES: weakref.WeakKeyDictionary[LightningApp, Routes] = weakref.WeakKeyDictionary()


def routes_of(app: LightningApp) -> Routes:
    """The app's routes, collected once (``configure_api()``/``configure_commands()`` run once, as in
    Lightning App, on the live objects)."""
    routes = _ROUTES.get(app)
    if routes is None:
        routes = _ROUTES[app] = Routes(app)
    return routes


@dataclass
class Answer:
    events: list[Event]
    end: RunEnded | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)
    """Pickles of the components the handler added and of its non-JSON ``run()`` arguments."""


def answer(flow: FlowIteration, state: dict[str, Any], record: EventRecord) -> Answer:
    """Run the handler of request ``record`` on ``state`` (the fold up to it): its events, in order
    (the state change, the Works' run requests, then the answer), and the run's end if it stopped it."""
    body = record.body
    rid = str(body.get("id", ""))
    method, route = str(body.get("method", "")).upper(), str(body.get("route", ""))

    def answered(status: int, response: Any) -> FlowRequestAnswered:
        return FlowRequestAnswered(id=rid, status=status, response=response)

    try:
        found = routes_of(flow.app).find(method, route)
    except KernelError as exc:
        return Answer([answered(500, str(exc))])
    if found is None:
        what = f"command {route.removeprefix('/command/')!r}" if route.startswith("/command/") else route
        return Answer([answered(404, f"the flow has no {method} {what}")])
    query = body.get("query") or {}
    try:
        kwargs = bind(found.handler, body.get("data"), {str(k): str(v) for k, v in dict(query).items()})
    except BadArguments as exc:
        return Answer([answered(422, str(exc))])
    # The objects get copies: a handler that changes a list in place must not change the state it is
    # diffed against.
    flow.begin(_detached(state))
    flow._state = state
    end: RunEnded | None = None
    status, response = 200, None
    real = sys.stdout
    out = LineTee(flow.on_line or (lambda line: None), real if flow.echo else None)
    sys.stdout = out
    try:
        flow.in_flow = True
        try:
            response = to_response(found.handler(**kwargs))
        finally:
            flow.in_flow = False
    except FlowInterrupted:
        return Answer([])  # the kernel is interrupting the run: nothing of the call counts
    except Blocked:
        pass
    except AppStop as stop:
        end = RunEnded(status="succeeded", message=stop.message)
    except AppFail as fail:
        end = RunEnded(status="failed", message=fail.message)
        status, response = 500, fail.message
    except BadArguments as exc:  # the request asked for what cannot be: the client's mistake
        status, response = 422, str(exc)
    except Exception as exc:
        status, response = 500, f"{type(exc).__name__}: {exc}"
        print(
            f"{method} {route} failed (the run goes on):\n{''.join(traceback.format_exception(exc))}".rstrip()
        )
    finally:
        sys.stdout = real
        out.flush()
    events, blobs, error = flow.finish(state)
    if error:
        status, response = 500, error
    events.append(answered(status, response))
    return Answer(events, end, blobs)


def _detached(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "components": copy.deepcopy(state["components"])}


def is_request(record: EventRecord) -> bool:
    return record.type == FlowRequestReceived.TYPE


__all__ = ["Answer", "Route", "Routes", "answer", "is_request", "routes_of"]
