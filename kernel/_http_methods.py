"""The flow's HTTP API as Lightning App declares it: ``Get``/``Post``/``Put``/``Delete`` in
``configure_api()``, and how a request's JSON becomes the handler's arguments.

A handler's arguments come from the request as FastAPI (Lightning App's server) takes them: a
parameter annotated with a pydantic model reads the JSON body (the whole body when it is the only
model, else the body's key of its name); any other parameter reads the body's key of its name, else
the query parameter of its name, converted to its annotation (``int``, ``float``, ``bool``, ``str``),
else its default. pydantic is never imported here: a model is recognised by its ``model_validate``.
What the handler returns is the response: JSON, or a pydantic model (dumped as JSON).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

METHODS = ("GET", "POST", "PUT", "DELETE")


class HttpMethod:
    """A route of the flow's API: ``route`` answered by ``method`` (a bound method of a flow, usually).

    ``timeout``: seconds the server waits for the flow's answer before it answers 504."""

    http: str = ""

    def __init__(
        self,
        route: str,
        method: Callable[..., Any],
        method_name: str | None = None,
        timeout: float = 30,
        **kwargs: Any,
    ) -> None:
        if not isinstance(route, str) or not route:
            raise TypeError(f"{type(self).__name__}(route=...) must be a path such as '/api/v1/name'")
        if not callable(method):
            raise TypeError(f"{type(self).__name__}({route!r}, method=...) must be callable, got {method!r}")
        self.route = route if route.startswith("/") else "/" + route
        self.method = method
        self.method_name = method_name or getattr(method, "__name__", "handler")
        owner = getattr(method, "__self__", None)
        self.component_name = str(getattr(owner, "name", "") or "")
        self.timeout = float(timeout)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.route!r}, {self.method_name})"


class Get(HttpMethod):
    http = "GET"


class Post(HttpMethod):
    http = "POST"


class Put(HttpMethod):
    http = "PUT"


class Delete(HttpMethod):
    http = "DELETE"


class BadArguments(Exception):
    """A request whose body or query does not fit the handler's parameters (the answer is a 422)."""


def is_model(annotation: Any) -> bool:
    """Whether ``annotation`` is a pydantic model class (v2 ``model_validate``, v1 ``parse_obj``)."""
    return inspect.isclass(annotation) and (
        hasattr(annotation, "model_validate") or hasattr(annotation, "parse_obj")
    )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that names something the module cannot resolve: use it raw
        return dict(getattr(fn, "__annotations__", {}) or {})


def parameters(fn: Callable[..., Any]) -> list[tuple[inspect.Parameter, Any]]:
    """``fn``'s parameters that a request fills (no ``self``, no ``*args``/``**kwargs``), with hints."""
    hints = _hints(fn)
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((p, hints.get(p.name, p.annotation)))
    return out


def describe(fn: Callable[..., Any]) -> list[dict[str, Any]]:
    """``fn``'s parameters as JSON (``run command --help``): name, type, default, required; a model's
    fields are listed as its parameters, as the command line gives them."""
    out: list[dict[str, Any]] = []
    for p, hint in parameters(fn):
        if is_model(hint):
            fields = getattr(hint, "model_fields", None) or getattr(hint, "__fields__", {})
            for name, info in fields.items():
                is_required = getattr(info, "is_required", None)
                required = bool(is_required() if callable(is_required) else getattr(info, "required", True))
                default = None if required else getattr(info, "default", None)
                ann = getattr(info, "annotation", None) or getattr(info, "outer_type_", None)
                out.append(
                    {
                        "name": name,
                        "type": _type_name(ann),
                        "required": required,
                        "default": _jsonable(default),
                    }
                )
            continue
        required = p.default is inspect.Parameter.empty
        out.append(
            {
                "name": p.name,
                "type": _type_name(hint),
                "required": required,
                "default": None if required else _jsonable(p.default),
            }
        )
    return out


def _type_name(hint: Any) -> str:
    if hint is inspect.Parameter.empty or hint is None:
        return "any"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def _convert(name: str, hint: Any, value: Any) -> Any:
    """A query string (or JSON value) as ``hint`` wants it."""
    if hint in (inspect.Parameter.empty, Any, None) or not isinstance(value, str):
        return value
    try:
        if hint is bool:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint in (int, float):
            return hint(value)
    except ValueError:
        raise BadArguments(f"parameter {name!r} must be {_type_name(hint)}, got {value!r}") from None
    if hint in (list, dict) or typing.get_origin(hint) in (list, dict):
        try:
            return json.loads(value)
        except ValueError:
            raise BadArguments(
                f"parameter {name!r} must be JSON ({_type_name(hint)}), got {value!r}"
            ) from None
    return value


def _validate(model: Any, name: str, data: Any) -> Any:
    try:
        if hasattr(model, "model_validate"):
            return model.model_validate(data)
        return model.parse_obj(data)
    except Exception as exc:  # pydantic's ValidationError, without importing pydantic
        raise BadArguments(f"parameter {name!r} ({model.__name__}): {exc}") from None


def bind(fn: Callable[..., Any], body: Any, query: dict[str, str]) -> dict[str, Any]:
    """The keyword arguments to call ``fn`` with for a request of JSON ``body`` and ``query``."""
    params = parameters(fn)
    models = [p.name for p, hint in params if is_model(hint)]
    fields = body if isinstance(body, dict) else {}
    kwargs: dict[str, Any] = {}
    for p, hint in params:
        if is_model(hint):
            if len(models) == 1 and not (isinstance(body, dict) and set(body) == {p.name}):
                data = body if body is not None else dict(query)
            elif p.name in fields:
                data = fields[p.name]
            elif p.default is not inspect.Parameter.empty:
                continue
            else:
                raise BadArguments(f"the body has no {p.name!r} for parameter {p.name} ({hint.__name__})")
            kwargs[p.name] = _validate(hint, p.name, data)
        elif p.name in fields:
            kwargs[p.name] = _convert(p.name, hint, fields[p.name])
        elif p.name in query:
            kwargs[p.name] = _convert(p.name, hint, query[p.name])
        elif p.default is inspect.Parameter.empty:
            if p.kind is p.POSITIONAL_ONLY:
                raise BadArguments(f"parameter {p.name!r} is positional-only: a request cannot give it")
            raise BadArguments(
                f"missing parameter {p.name!r}: send it as a key of the JSON body or as ?{p.name}=..."
            )
    known = {p.name for p, _ in params}
    if not models and fields and not set(fields) <= known and not _takes_kwargs(fn):
        unknown = sorted(set(fields) - known)
        raise BadArguments(f"unexpected parameters {unknown}: the handler takes {sorted(known)}")
    return kwargs


def _takes_kwargs(fn: Callable[..., Any]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def to_response(value: Any) -> Any:
    """What a handler returned, as JSON; ``TypeError`` when it is not."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and is_model(type(value)):
        return dump(mode="json")
    legacy = getattr(value, "dict", None)
    if callable(legacy) and is_model(type(value)):
        return json.loads(json.dumps(legacy(), default=str))
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the handler returned a {type(value).__name__}, which is not JSON ({exc})") from None
