"""``run app --server URL``: submit an app to a running ``serve`` and follow its output."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from .errors import ServiceUnreachable

ENDED = {"succeeded": 0, "failed": 1, "stopped": 0}


def _request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 40
) -> Any:
    req = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    token = os.environ.get("LK_SERVER_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except Exception:
            message = exc.reason
        raise ServiceUnreachable("the kernel", url, f"HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnreachable(
            "the kernel", url, f"{exc}; is `lightning-kernel serve` running there?"
        ) from None


def submit_and_follow(server: str, app_file: str, name: str | None) -> int:
    import cloudpickle

    from ._app import load_app

    base = server.rstrip("/")
    app, _ = load_app(app_file)
    headers = {"Content-Type": "application/octet-stream", "X-LK-App-File": os.path.abspath(app_file)}
    if name:
        headers["X-LK-Name"] = name
    run_id = _request(f"{base}/api/runs", cloudpickle.dumps(app), headers)["id"]
    print(f"run {run_id} submitted to {base}", file=sys.stderr, flush=True)
    after = 0
    try:
        while True:
            for line in _request(f"{base}/api/runs/{run_id}/logs?after={after}&wait=2"):
                after = line["seq"]
                stream = sys.stderr if line["stream"] == "stderr" else sys.stdout
                print(line["line"], file=stream, flush=True)
            info = _request(f"{base}/api/runs/{run_id}")
            if info["status"] in ENDED:
                # The last lines may land just after the end.
                time.sleep(0.2)
                for line in _request(f"{base}/api/runs/{run_id}/logs?after={after}"):
                    print(line["line"], flush=True)
                if info["status"] == "failed":
                    print(f"run {run_id} failed:\n{info['message']}", file=sys.stderr)
                return ENDED[info["status"]]
    except KeyboardInterrupt:
        _request(f"{base}/api/runs/{run_id}/stop", b"")
        print(f"\nasked the kernel to stop run {run_id}", file=sys.stderr)
        return 130
