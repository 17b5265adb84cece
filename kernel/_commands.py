"""The flow's commands: ``configure_commands()`` and Lightning App's ``ClientCommand``.

A flow returns ``[{"name": self.handler}]`` or ``[{"name": MyCommand(self.handler)}]``. A command is
the request ``POST /command/<name>`` (spaces in a name become ``_``), answered by the handler through
the flow's event path as every API request is (``_requests``). ``lightning-kernel run command NAME``
either sends ``--arg value`` pairs as the handler's arguments or, for a ``ClientCommand``, loads the
class from the app's file and calls its ``run()`` on the client, with ``sys.argv`` set to the
command's own arguments; ``run()`` calls ``invoke_handler(config=...)`` to reach the handler.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ._flow import configured
from .errors import KernelError


def command_route(name: str) -> str:
    return "/command/" + name.replace(" ", "_")


class ClientCommand:
    """A command whose ``run()`` executes on the client (``lightning-kernel run command NAME``)."""

    description: str = ""
    requirements: list[str] = []

    def __init__(self, method: Callable[..., Any] | None) -> None:
        self.method = method
        if not self.description:
            self.description = (getattr(method, "__doc__", None) or type(self).__doc__ or "").strip()
        owner = getattr(method, "__self__", None)
        self.owner = getattr(owner, "name", None) if owner is not None else None
        self.models: dict[str, Any] | None = None
        self.app_url: str | None = None
        self.command_name = ""
        self._headers: dict[str, str] = {}

    def _setup(self, command_name: str, app_url: str, headers: dict[str, str] | None = None) -> None:
        self.command_name = command_name
        self.app_url = app_url.rstrip("/")
        self._headers = dict(headers or {})

    def run(self, **cli_kwargs: Any) -> None:
        """Override: what the command does on the client (parse ``sys.argv``, call ``invoke_handler``)."""

    def invoke_handler(self, config: Any = None) -> Any:
        """Call the command's handler in the flow with ``config`` (a pydantic model, a dict, or None);
        returns its JSON answer. A failure is printed, and ends the command with exit code 1."""
        if self.app_url is None:
            raise KernelError(
                f"command {self.command_name or type(self).__name__} is not set up: run it with "
                "`lightning-kernel run command NAME`"
            )
        status, answer = post_json(
            f"{self.app_url}{command_route(self.command_name)}", _body(config), self._headers
        )
        if status != 200:
            detail = answer.get("error", answer) if isinstance(answer, dict) else answer
            print(f"Failed with status code {status}. Detail: {detail}", file=sys.stderr)
            sys.exit(1)
        return answer

    def _to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "requirements": self.requirements}

    def __call__(self, **kwargs: Any) -> Any:
        assert self.method is not None
        return self.method(**kwargs)


def _body(config: Any) -> Any:
    if config is None:
        return None
    dump = getattr(config, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    legacy = getattr(config, "dict", None)
    if callable(legacy) and not isinstance(config, dict):
        return json.loads(json.dumps(legacy(), default=str))
    return config


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float = 120) -> tuple[int, Any]:
    """POST ``body`` as JSON to ``url``; ``(status, decoded answer)``, also for an error status."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    return _send(req, timeout)


def get_json(url: str, headers: dict[str, str], timeout: float = 30) -> tuple[int, Any]:
    req = urllib.request.Request(url, method="GET")
    for k, v in headers.items():
        req.add_header(k, v)
    return _send(req, timeout)


def _send(req: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KernelError(
            f"cannot reach {req.full_url}: {reason} (is the run's `run app` or `serve` up?)"
        ) from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def commands_of(flows: Any) -> dict[str, Any]:
    """Every command of the flows, by name: the handler, or the ``ClientCommand`` that wraps it."""
    out: dict[str, Any] = {}
    for flow in flows:
        for entry in configured(flow, "configure_commands") or []:
            if not isinstance(entry, dict):
                raise KernelError(
                    f"{flow.name}.configure_commands() must return a list of {{name: handler}} dicts, "
                    f"got {entry!r}"
                )
            for name, target in entry.items():
                if isinstance(target, type) and issubclass(target, ClientCommand):
                    raise KernelError(
                        f"{flow.name}.configure_commands(): command {name!r} is the class {target.__name__}; "
                        f"give an instance with its handler: {target.__name__}(self.handler)"
                    )
                if not (isinstance(target, ClientCommand) or callable(target)):
                    raise KernelError(
                        f"{flow.name}.configure_commands(): command {name!r} must be a method or a "
                        f"ClientCommand, got {target!r}"
                    )
                out[str(name).replace(" ", "_")] = target
    return out


def handler_of(target: Any) -> Callable[..., Any]:
    """The function that answers a command (a ``ClientCommand``'s method)."""
    if isinstance(target, ClientCommand):
        if target.method is None:
            raise KernelError(f"the ClientCommand {type(target).__name__} has no handler method")
        return target.method
    return target


def source_of(target: Any) -> dict[str, Any] | None:
    """Where a ``ClientCommand``'s class is defined, for the client to load it: file and source."""
    if not isinstance(target, ClientCommand):
        return None
    import inspect

    cls = type(target)
    try:
        path = inspect.getfile(cls)
        with open(path) as f:
            source = f.read()
    except (OSError, TypeError) as exc:
        raise KernelError(f"the source of ClientCommand {cls.__name__} cannot be read: {exc}") from None
    return {"class": cls.__name__, "file": os.path.abspath(path), "source": source}
