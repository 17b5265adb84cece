"""The client of a running ``serve``: ``Client`` (the SDK side) and ``run app --server URL``.

The server's token comes from ``token=``, else ``LK_SERVER_TOKEN``, else ``<data dir>/server.token``
(``data_dir=``, ``--data-dir``, ``LK_DATA_DIR``, default ``.lightning-kernel``): a client on the
server's machine, in the server's folder, needs nothing else. It is read at each request, so a
client outlives a restart of its server (which writes a new token).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import KernelError, NotAuthorized, ServiceUnreachable

ENDED = {"succeeded": 0, "failed": 1, "stopped": 0}


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
            try:
                message = json.loads(exc.read()).get("error", "")
            except Exception:
                message = str(exc.reason)
            if exc.code == 401:
                raise NotAuthorized(self.url, self._unauthorized(token, source, message)) from None
            raise KernelError(f"the kernel at {self.url} answered HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnreachable(
                "the kernel", self.url, f"{exc}; is `lightning-kernel serve` running there?"
            ) from None

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

    # -- the API ------------------------------------------------------------------------------------

    def submit(self, app: Any, app_file: str = "app.py", name: str | None = None, module: Any = None) -> str:
        """Submit a LightningApp; its run id. With the app file's ``module`` (as ``load_app`` returns it),
        the app's folder goes with it and the kernel and workers import the app's own files."""
        import cloudpickle

        headers = {"Content-Type": "application/octet-stream", "X-LK-App-File": app_file}
        if name:
            headers["X-LK-Name"] = name
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
        self, run_id: str, after: int = 0, component: str | None = None, wait: float = 0
    ) -> list[dict[str, Any]]:
        query = f"after={after}&wait={wait}" + (f"&component={_q(component)}" if component else "")
        return list(self.request(f"/api/runs/{_q(run_id)}/logs?{query}", timeout=wait + 40))

    def stop(self, run_id: str) -> None:
        self.request(
            f"/api/runs/{_q(run_id)}/stop", b"{}", {"Content-Type": "application/json"}, method="POST"
        )


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def submit_and_follow(client: Client, app_file: str, name: str | None) -> int:
    """``run app --server``: submit ``app_file``, print what the run prints, exit as it ends."""
    from ._app import load_app

    app, module = load_app(app_file)
    run_id = client.submit(app, os.path.abspath(app_file), name, module=module)
    print(f"run {run_id} submitted to {client.url}", file=sys.stderr, flush=True)
    after = 0
    try:
        while True:
            for line in client.logs(run_id, after=after, wait=2):
                after = line["seq"]
                stream = sys.stderr if line["stream"] == "stderr" else sys.stdout
                print(line["line"], file=stream, flush=True)
            info = client.run(run_id)
            if info["status"] in ENDED:
                # The last lines may land just after the end.
                time.sleep(0.2)
                for line in client.logs(run_id, after=after):
                    print(line["line"], flush=True)
                if info["status"] == "failed":
                    print(f"run {run_id} failed:\n{info['message']}", file=sys.stderr)
                return ENDED[info["status"]]
    except KeyboardInterrupt:
        client.stop(run_id)
        print(f"\nasked the kernel to stop run {run_id}", file=sys.stderr)
        return 130
