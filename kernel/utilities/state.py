"""Lightning App's ``lightning.app.utilities.state``: ``AppState``, a running app's state from outside.

A UI (a Streamlit or Dash page, a script) reads the flow's state and sets its attributes, as in
Lightning App: ``state = AppState()``, ``state.counter``, ``state.child.w.status``, ``state.should_print =
True``. Reads come from the kernel's HTTP API (``GET /api/runs/<run>/state``); a write is a request to
the run's flow (``POST /runs/<run>/__lk__/state``), so it is an event of the run like any other,
recorded and replayed, and it needs the server's token (every write does).

Where it connects: ``url`` or ``LK_APP_STATE_URL``, else the server ``run app``/``serve`` wrote into
the data dir (``LK_DATA_DIR``, default ``.lightning-kernel``); the token: ``token``, ``LK_SERVER_TOKEN``
or that data dir's ``server.token``; the run: ``run``, ``LK_RUN``, else ``latest``. Only stdlib HTTP.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lightning_kernel.errors import KernelError

STATE_ROUTE = "/__lk__/state"


def _data_dir() -> str:
    return os.environ.get("LK_DATA_DIR") or ".lightning-kernel"


def _token() -> str | None:
    token = os.environ.get("LK_SERVER_TOKEN")
    path = os.path.join(_data_dir(), "server.token")
    if token is None and os.path.exists(path):
        with open(path) as f:
            token = f.read().strip()
    return token or None


def _url() -> str:
    url = os.environ.get("LK_APP_STATE_URL") or os.environ.get("LIGHTNING_APP_STATE_URL")
    if url:
        return url.rstrip("/")
    path = os.path.join(_data_dir(), "server.json")
    try:
        with open(path) as f:
            return str(json.load(f)["url"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        return "http://127.0.0.1:7501"


def headers_for(context: dict[str, Any] | None = None) -> dict[str, str]:
    """The headers a request to the app's server needs: its token (Lightning App sent session ids)."""
    token = _token()
    return {"Authorization": f"Bearer {token}"} if token else {}


class _Link:
    """Where an AppState and its children read and write."""

    def __init__(self, url: str | None, run: str | None, token: str | None) -> None:
        self.url = (url or _url()).rstrip("/")
        self.run = run or os.environ.get("LK_RUN") or "latest"
        self.token = token if token is not None else _token()

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with_error = detail
            try:
                with_error = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                pass
            raise KernelError(f"{method} {self.url}{path}: HTTP {exc.code}: {with_error}") from None
        except OSError as exc:
            raise KernelError(
                f"no lightning-kernel server answers at {self.url} ({exc}): is `run app` running? "
                "(LK_APP_STATE_URL, LK_DATA_DIR)"
            ) from None

    def tree(self) -> dict[str, Any]:
        got = self._send("GET", f"/api/runs/{urllib.parse.quote(self.run)}/state")
        return dict(got["root"])

    def set(self, component: str, changes: dict[str, Any]) -> None:
        self._send(
            "POST",
            f"/runs/{urllib.parse.quote(self.run)}{STATE_ROUTE}",
            {"component": component, "changes": changes},
        )


class AppState:
    """The state of a running app's root flow (or of one of its components, as ``state.child``).

    Attribute access reads the flow's variables, then its child flows, Works and structures, as
    Lightning App's AppState does; setting a variable of a flow sends it to the run. ``vars``,
    ``flows``, ``works`` are the parts; ``_request_state()`` reads the state again (reads are cached
    until then, as a UI re-renders on its own schedule)."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        last_state: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        my_affiliation: tuple[str, ...] | None = None,
        plugin: Any = None,
        *,
        url: str | None = None,
        run: str | None = None,
        token: str | None = None,
    ) -> None:
        if url is None and host is not None:
            url = f"{host.rstrip('/')}:{port}" if port is not None else host
            if "://" not in url:
                url = f"http://{url}"
        object.__setattr__(self, "_link", _Link(url, run, token))
        object.__setattr__(self, "_path", ("root", *(my_affiliation or ())))
        object.__setattr__(self, "_tree", state)
        object.__setattr__(self, "_plugin", plugin)

    @classmethod
    def _child(cls, parent: AppState, key: str, tree: dict[str, Any]) -> AppState:
        child = cls.__new__(cls)
        object.__setattr__(child, "_link", parent._link)
        object.__setattr__(child, "_path", (*parent._path, key))
        object.__setattr__(child, "_tree", tree)
        object.__setattr__(child, "_plugin", parent._plugin)
        return child

    def _request_state(self) -> None:
        tree = self._link.tree()
        for key in self._path[1:]:
            for part in ("flows", "works", "structures"):
                if key in tree.get(part, {}):
                    tree = tree[part][key]
                    break
            else:
                raise KernelError(f"the app has no component {'.'.join(self._path)} any more")
        object.__setattr__(self, "_tree", tree)

    @property
    def _state(self) -> dict[str, Any]:
        if self._tree is None:
            self._request_state()
        assert self._tree is not None
        return self._tree

    @property
    def vars(self) -> dict[str, Any]:
        return dict(self._state.get("vars", {}))

    @property
    def flows(self) -> dict[str, AppState]:
        return {k: AppState._child(self, k, v) for k, v in self._state.get("flows", {}).items()}

    @property
    def works(self) -> dict[str, AppState]:
        return {k: AppState._child(self, k, v) for k, v in self._state.get("works", {}).items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        tree = self._state
        if name in tree.get("vars", {}):
            return tree["vars"][name]
        for part in ("flows", "works", "structures"):
            if name in tree.get(part, {}):
                return AppState._child(self, name, tree[part][name])
        if name == "status" and "status" in tree:
            return tree["status"]
        raise AttributeError(f"{'.'.join(self._path)} has no attribute {name!r} in the app's state")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        component = ".".join(self._path)
        self._link.set(component, {name: value})
        if self._tree is not None:
            self._tree.setdefault("vars", {})[name] = value

    def __repr__(self) -> str:
        return f"AppState({'.'.join(self._path)}: {self.vars})"

    def __bool__(self) -> bool:
        return True


__all__ = ["AppState", "headers_for"]
