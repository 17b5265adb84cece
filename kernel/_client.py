"""The client of a running ``serve``: its JSON API (``Client``), the SDK's HTTP mode on it
(``HttpBackend``, behind ``lightning_kernel.Client(url)``), and ``run app --server URL``.

Events and log lines are followed on the server's server-sent event streams (``_sse``): a stream cut
short (the server restarting) is opened again after the last record seen, for ``RECONNECT_S``. Errors
come back typed: the server names each error's kind and data, and ``Client._refused`` raises the same
``KernelError`` the kernel raised (``RunNotFound``, ``ParameterError``...).

The server's token comes from ``token=``, else ``LK_SERVER_TOKEN``, else ``<data dir>/server.token``
(``data_dir=``, ``--data-dir``, ``LK_DATA_DIR``, default ``.lightning-kernel``): a client on the
server's machine, in the server's folder, needs nothing else. It is read at each request, so a
client outlives a restart of its server (which writes a new token).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._records import EventRecord, LogLine, RunInfo
from ._sdk import RunState, app_file_of
from ._sse import Message, Parser
from ._views import event_from_json, log_from_json, run_from_json
from .errors import (
    ComponentNotFound,
    KernelError,
    LeaseHeld,
    NotAuthorized,
    ParameterError,
    RunNotFound,
    ServiceUnreachable,
)

if TYPE_CHECKING:
    from ._sdk import Client as SdkClient

ENDED = {"succeeded": 0, "failed": 1, "stopped": 0}
PAGE = 10_000
"""Records per request (the server's largest ``limit``)."""
RECONNECT_S = 10.0
"""How long a follower tries to open a stream again after it broke."""
STREAM_TIMEOUT_S = 60.0
"""Silence after which a stream counts as lost (the server says something every 15 s)."""


class Client:
    """A ``lightning-kernel serve`` at ``url``."""

    def __init__(self, url: str, token: str | None = None, data_dir: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.data_dir = os.path.abspath(data_dir or os.environ.get("LK_DATA_DIR") or ".lightning-kernel")

    @property
    def token_path(self) -> str:
        return os.path.join(self.data_dir, "server.token")

    def token(self) -> tuple[str | None, str]:
        """The token to send and where it came from (for messages); None when there is none."""
        if self._token:
            return self._token, "token="
        if os.environ.get("LK_SERVER_TOKEN"):
            return os.environ["LK_SERVER_TOKEN"], "LK_SERVER_TOKEN"
        try:
            with open(self.token_path) as f:
                return f.read().strip() or None, self.token_path
        except OSError:
            return None, self.token_path

    def request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 40,
        method: str | None = None,
    ) -> Any:
        """The JSON answer of ``path`` (a POST when ``data`` is given); errors are KernelErrors."""
        url = self.url + path
        req = urllib.request.Request(
            url, data=data, headers=headers or {}, method=method or ("POST" if data is not None else "GET")
        )
        token, source = self.token()
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, token, source) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnreachable(
                "the kernel", self.url, f"{exc}; is `lightning-kernel serve` running there?"
            ) from None

    def stream(self, path: str, timeout: float = STREAM_TIMEOUT_S) -> Iterator[Message]:
        """The server-sent messages of ``path`` until the server ends the stream; errors as ``request``.

        The server sends a comment at least every ``_api.KEEP_ALIVE_S``: ``timeout`` s of silence is a
        connection lost (``ServiceUnreachable``)."""
        req = urllib.request.Request(self.url + path, headers={"Accept": "text/event-stream"})
        token, source = self.token()
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, token, source) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnreachable(
                "the kernel", self.url, f"{exc}; is `lightning-kernel serve` running there?"
            ) from None
        parser = Parser()
        with resp:
            try:
                for raw in resp:
                    message = parser.feed(raw.decode())
                    if message is not None:
                        yield message
            except (OSError, http.client.HTTPException) as exc:  # a timeout, a reset, a cut chunk: lost
                raise ServiceUnreachable(
                    "the kernel", self.url, f"the stream of {path} broke: {exc}"
                ) from None

    def _refused(self, exc: urllib.error.HTTPError, token: str | None, source: str) -> KernelError:
        """The error an HTTP error answer stands for: the server names its kind and data."""
        try:
            body = json.loads(exc.read())
        except Exception:
            body = {"error": str(exc.reason)}
        message = str(body.get("error", ""))
        if exc.code == 401:
            return NotAuthorized(self.url, self._unauthorized(token, source, message))
        kind = body.get("kind")
        if kind == "RunNotFound" and "run" in body:
            return RunNotFound(str(body["run"]))
        if kind == "ComponentNotFound" and {"run", "component", "known"} <= body.keys():
            return ComponentNotFound(str(body["run"]), str(body["component"]), list(body["known"]))
        if kind == "ParameterError" and "parameter" in body:
            return ParameterError(str(body["parameter"]), message)
        if kind == "LeaseHeld" and {"what", "holder", "ttl"} <= body.keys():
            return LeaseHeld(str(body["what"]), str(body["holder"]), float(body["ttl"]))
        if exc.code == 409 or kind == "KernelError":
            return KernelError(message)
        return KernelError(f"the kernel at {self.url} answered HTTP {exc.code}: {message}")

    def _unauthorized(self, token: str | None, source: str, message: str) -> str:
        if token is None:
            return (
                f"the kernel at {self.url} needs its token, and there is none here (no LK_SERVER_TOKEN, "
                f"no {source}): set LK_SERVER_TOKEN to what the server's <data dir>/server.token "
                "holds, or pass --data-dir (LK_DATA_DIR) of that server"
            )
        return (
            f"the kernel at {self.url} refused the token from {source}: it belongs to another "
            "serve, or that serve restarted with a new one; its <data dir>/server.token holds the current one"
        )

    # -- the API, as JSON ---------------------------------------------------------------------------

    def submit(
        self,
        app: Any,
        app_file: str = "app.py",
        name: str | None = None,
        module: Any = None,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Submit a LightningApp; its run id. With the app file's ``module`` (as ``load_app`` returns it),
        the app's folder goes with it and the kernel and workers import the app's own files (run with
        ``argv``); ``env`` is set for every Work."""
        import cloudpickle

        headers = {"Content-Type": "application/octet-stream", "X-LK-App-File": app_file}
        if name:
            headers["X-LK-Name"] = name
        if argv:
            headers["X-LK-Argv"] = json.dumps(argv)
        if env:
            headers["X-LK-Env"] = json.dumps(env)
        if module is not None:
            from ._code import pack

            packed = pack(app_file)
            ref = self.request("/api/code", packed.data, {"Content-Type": "application/octet-stream"})["ref"]
            headers.update({"X-LK-Code": ref, "X-LK-Module": module.__name__, "X-LK-Entry": packed.entry})
            if module.__name__ in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.unregister_pickle_by_value(module)
        return str(self.request("/api/runs", cloudpickle.dumps(app), headers)["id"])

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.request(f"/api/runs?limit={limit}"))

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.request(f"/api/runs/{_q(run_id)}"))

    def state(self, run_id: str, at: int | None = None) -> dict[str, Any]:
        return dict(self.request(f"/api/runs/{_q(run_id)}/state" + (f"?at={at}" if at is not None else "")))

    def events(self, run_id: str, after: int = 0, limit: int = 1000, wait: float = 0) -> list[dict[str, Any]]:
        return list(
            self.request(
                f"/api/runs/{_q(run_id)}/events?after={after}&limit={limit}&wait={wait}", timeout=wait + 40
            )
        )

    def logs(
        self, run_id: str, after: int = 0, component: str | None = None, wait: float = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        query = f"after={after}&limit={limit}&wait={wait}" + (
            f"&component={_q(component)}" if component else ""
        )
        return list(self.request(f"/api/runs/{_q(run_id)}/logs?{query}", timeout=wait + 40))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        return self.request(path, data, {"Content-Type": "application/json"}, method="POST")

    def stop(self, run_id: str) -> None:
        self.post(f"/api/runs/{_q(run_id)}/stop")

    def resume(self, run_id: str) -> None:
        self.post(f"/api/runs/{_q(run_id)}/resume")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class HttpBackend:
    """The SDK's HTTP mode (``lightning_kernel.Client(url)``): the JSON API above, as typed records."""

    def __init__(self, url: str, token: str | None, data_dir: str | None) -> None:
        self.api = Client(url, token, data_dir)
        self.data_dir = self.api.data_dir

    def close(self) -> None:
        pass

    def runs(self, limit: int) -> list[RunInfo]:
        return [run_from_json(r) for r in self.api.runs(limit)]

    def run(self, run_id: str) -> RunInfo:
        return run_from_json(self.api.run(run_id))

    def submit(self, app: Any, name: str | None, argv: list[str], env: dict[str, str]) -> RunInfo:
        from ._app import load_app

        if isinstance(app, str):
            loaded, module = load_app(app, argv)
            run_id = self.api.submit(loaded, os.path.abspath(app), name, module=module, argv=argv, env=env)
            return self.run(run_id)
        return self.run(self.api.submit(app, app_file_of(app), name))

    def state(self, run_id: str, at: int | None) -> RunState:
        got = self.api.state(run_id, at)
        return RunState(got["run"], got["root"], got["works"])

    def history(self, run_id: str, after: int, limit: int | None) -> list[EventRecord]:
        out: list[EventRecord] = []
        while True:
            page_limit = PAGE if limit is None else min(limit - len(out), PAGE)
            page = self.api.events(run_id, after=after, limit=page_limit)
            out += [event_from_json(run_id, e) for e in page]
            if len(page) < page_limit or (limit is not None and len(out) >= limit):
                return out
            after = out[-1].seq

    def events(self, run_id: str, after: int, follow: bool) -> Iterator[EventRecord]:
        if not follow:
            return iter(self.history(run_id, after, None))
        return self._follow(f"/api/runs/{_q(run_id)}/events/stream", "", run_id, after, event_from_json)

    def logs(self, run_id: str, component: str | None, after: int, follow: bool) -> Iterator[LogLine]:
        if follow:
            query = ""
            if component is not None:
                # Asked now: an unknown component is an error of this call, not of the loop later.
                self.api.logs(run_id, after=after, component=component, limit=1)
                query = f"&component={_q(component)}"
            return self._follow(f"/api/runs/{_q(run_id)}/logs/stream", query, run_id, after, log_from_json)
        return self._pages(
            run_id, component, self.api.logs(run_id, after=after, component=component, limit=PAGE)
        )

    def _pages(self, run_id: str, component: str | None, page: list[dict[str, Any]]) -> Iterator[LogLine]:
        while True:
            yield from (log_from_json(run_id, x) for x in page)
            if len(page) < PAGE:
                return
            page = self.api.logs(run_id, after=page[-1]["seq"], component=component, limit=PAGE)

    def _follow(
        self, path: str, query: str, run_id: str, after: int, convert: Callable[[str, dict[str, Any]], Any]
    ) -> Iterator[Any]:
        """A stream's records until its ``end``; a stream cut short (the server restarting) is opened
        again after the last record seen, for ``RECONNECT_S``."""
        lost_at: float | None = None
        while True:
            try:
                for message in self.api.stream(f"{path}?after={after}{query}"):
                    if message.event == "end":
                        return
                    if message.event in ("event", "log"):
                        record = convert(run_id, message.data)
                        after, lost_at = record.seq, None
                        yield record
                why = "the server ended the stream before the run's end (it stopped?)"
            except ServiceUnreachable as exc:
                why = exc.reason
            now = time.monotonic()
            lost_at = lost_at or now
            if now - lost_at > RECONNECT_S:
                raise ServiceUnreachable("the kernel", self.api.url, f"following run {run_id}: {why}")
            time.sleep(0.5)

    def stop(self, run_id: str, wait: float) -> RunInfo:
        self.api.stop(run_id)
        deadline = time.monotonic() + wait
        info = self.run(run_id)
        while info.status not in ENDED and (left := deadline - time.monotonic()) > 0:
            self.api.events(run_id, after=info.last_seq, limit=1, wait=min(left, 10))  # wakes at an event
            info = self.run(run_id)
        return info

    def resume(self, run_id: str) -> RunInfo:
        self.api.resume(run_id)
        return self.run(run_id)

    def replay(self, run_id: str, app: str | None, until: int | None) -> dict[str, Any]:
        if app is not None:
            raise ParameterError(
                "app",
                "a server replays a run with its own recorded code; check another app file with Client()",
            )
        return dict(self.api.post(f"/api/runs/{_q(run_id)}/replay", {"until": until}))

    def diff(
        self, run_id: str, other: str | None, from_seq: int | None, to_seq: int | None
    ) -> dict[str, Any]:
        params = {"other": other, "from": from_seq, "to": to_seq}
        query = "&".join(f"{k}={_q(str(v))}" for k, v in params.items() if v is not None)
        return dict(self.api.request(f"/api/runs/{_q(run_id)}/diff" + (f"?{query}" if query else "")))

    def fork(self, run_id: str, at: int, app: str | None) -> str:
        if app is not None:
            raise ParameterError(
                "app", "a server forks a run with its own recorded code; fork with --app locally"
            )
        return str(self.api.post(f"/api/runs/{_q(run_id)}/fork", {"at": at})["id"])


def submit_and_follow(
    client: SdkClient,
    app_file: str,
    name: str | None,
    argv: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """``run app --server``: submit ``app_file``, print what the run prints, exit as it ends."""
    run = client.submit(app_file, name, argv=argv, env=env)
    print(f"run {run.id} submitted to {client.url}", file=sys.stderr, flush=True)
    return _follow_to_the_end(client, run.id, 0)


def follow_resumed(client: SdkClient, run_id: str) -> int:
    """``resume RUN --server``: the server resumes the run; print what it prints from now on."""
    run = client.run(run_id)
    after = max((line.seq for line in client.logs(run.id)), default=0)
    client.resume(run.id)
    print(f"run {run.id} resumed on {client.url}", file=sys.stderr, flush=True)
    return _follow_to_the_end(client, run.id, after)


def _follow_to_the_end(client: SdkClient, run_id: str, after: int) -> int:
    try:
        for line in client.logs(run_id, follow=True, after=after):
            print(line.line, file=sys.stderr if line.stream == "stderr" else sys.stdout, flush=True)
        info = client.run(run_id)
        if info.status == "failed":
            print(f"run {run_id} failed:\n{info.message}", file=sys.stderr)
        return ENDED[info.status]
    except KeyboardInterrupt:
        client.stop(run_id, wait=0)
        print(f"\nasked the kernel to stop run {run_id}", file=sys.stderr)
        return 130
