"""`serve`: a long-running kernel hosting many runs, its HTTP API, and `run app --server`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _fixtures._ports import free_port, wait_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def server(lk):
    port = free_port()
    proc = lk.popen("serve", "--port", str(port))
    try:
        wait_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def test_run_app_on_a_server_and_the_api(lk, server):
    url, _ = server
    app = lk.app((EXAMPLES / "counter.py").read_text())
    proc = lk("run", "app", app, "--server", url, check=True, timeout=120)
    assert "State:" in proc.stdout and "done" in proc.stdout

    runs = get(f"{url}/api/runs")
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    run_id = runs[0]["id"]
    assert get(f"{url}/api/runs/latest")["id"] == run_id
    events = get(f"{url}/api/runs/{run_id}/events?after=0")
    assert events[0]["type"] == "run.created" and events[-1]["type"] == "run.ended"
    later = get(f"{url}/api/runs/{run_id}/events?after={events[3]['seq']}")
    assert [e["seq"] for e in later] == [e["seq"] for e in events[4:]]
    seq = next(
        e["seq"]
        for e in events
        if e["type"] == "work.state_changed"
        and e["body"]["work"] == "root.w_1"
        and e["body"]["changes"]["counter"] == 2
    )
    assert get(f"{url}/api/runs/{run_id}/state?at={seq}")["root"]["works"]["w_1"]["vars"]["counter"] == 2
    assert get(f"{url}/api/runs/{run_id}/state")["run"]["status"] == "succeeded"
    logs = get(f"{url}/api/runs/{run_id}/logs?component=root")
    assert logs[-1]["line"] == "done"
    with pytest.raises(urllib.error.HTTPError) as info:
        get(f"{url}/api/runs/nope/state")
    assert info.value.code == 404
    with urllib.request.urlopen(f"{url}/view", timeout=10) as r:
        assert run_id in r.read().decode()


def test_many_runs_at_once_and_stop_through_the_api(lk, server):
    url, _ = server
    forever = lk.app(
        """
        import time
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        class Tick(LightningWork):
            def __init__(self):
                super().__init__(parallel=True)
                self.n = 0
            def run(self):
                while True:
                    time.sleep(0.05)
                    self.n += 1

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.t = Tick()
            def run(self):
                self.t.run()

        app = LightningApp(Root())
    """,
        name="forever.py",
    )
    followers = [lk.popen("run", "app", forever, "--server", url) for _ in range(2)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = get(f"{url}/api/runs")
        if len(runs) == 2 and all(r["status"] == "running" and r["last_seq"] > 5 for r in runs):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"two runs did not start: {runs}")
    token = (lk.dir / "data" / "server.token").read_text()
    for r in runs:
        req = urllib.request.Request(f"{url}/api/runs/{r['id']}/stop", data=b"{}", method="POST")
        req.add_header("Content-Type", "application/json")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 401  # a change needs the token, also on loopback
        req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
    for f in followers:
        _, err = f.communicate(timeout=60)
        assert f.returncode == 0, err
    assert {r["status"] for r in get(f"{url}/api/runs")} == {"stopped"}


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_changes_need_the_token_on_any_address(tmp_path, host):
    from lightning_kernel._config import Config
    from lightning_kernel._server import Server
    from starlette.testclient import TestClient

    server = Server(Config.from_env(data_dir=str(tmp_path)), host, port=7501)
    client = TestClient(server.app(), base_url="http://127.0.0.1:7501")
    assert client.post("/api/runs", content=b"x").status_code == 401
    assert client.post("/api/runs/r1/stop").status_code == 401
    assert server.require_token is (host == "0.0.0.0")  # reads too, beyond loopback


def test_serve_resumes_its_runs_after_a_restart(lk):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = lk.app((EXAMPLES / "counter.py").read_text().replace(">= 5", ">= 40"))
    first = lk.popen("serve", "--port", str(port))
    wait_port(port, timeout=30, proc=first)
    follower = lk.popen("run", "app", app, "--server", url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = get(f"{url}/api/runs")
        if runs and runs[0]["last_seq"] > 10:
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    # wait(), not communicate(): the killed kernel's Works may hold its output pipe a moment longer.
    first.wait(timeout=30)
    follower.kill()
    follower.wait(timeout=30)
    second = lk.popen("serve", "--port", str(port))
    try:
        wait_port(port, timeout=60, proc=second)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = get(f"{url}/api/runs")[0]["status"]
            if status == "succeeded":
                break
            time.sleep(0.2)
        assert status == "succeeded"
        state = get(f"{url}/api/runs/latest/state")
        assert state["root"]["works"]["w_1"]["vars"]["counter"] >= 40
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
    assert os.path.exists(lk.dir / "data" / "server.token")


def test_the_client_finds_the_token_in_the_data_dir(lk, server):
    from lightning_kernel._app import load_app
    from lightning_kernel._client import Client
    from lightning_kernel.errors import NotAuthorized

    url, _ = server
    path = lk.app((EXAMPLES / "counter.py").read_text())
    app, _ = load_app(path)
    with pytest.raises(NotAuthorized, match="needs its token"):
        Client(url, data_dir=str(lk.dir / "nowhere")).submit(app, path)
    client = Client(url, data_dir=str(lk.dir / "data"))
    run_id = client.submit(app, path, name="sdk")
    after, types = 0, []
    while "run.ended" not in types:
        events = client.events(run_id, after=after, wait=30)
        assert events, "no event for 30 s"
        after, types = events[-1]["seq"], types + [e["type"] for e in events]
    assert client.run(run_id)["name"] == "sdk" and client.state(run_id)["run"]["status"] == "succeeded"
    assert client.logs(run_id, component="root")[-1]["line"] == "done"
    assert client.runs()[0]["id"] == run_id


def test_run_app_on_a_server_passes_app_args_and_env(lk, server):
    url, _ = server
    app = lk.app(
        """
        import os, sys
        from lightning_kernel import LightningApp, LightningFlow, LightningWork

        ARGS = sys.argv[1:]  # on the client, the server and every worker alike

        class W(LightningWork):
            def __init__(self):
                super().__init__()
                self.seen = ""
            def run(self):
                self.seen = f"{ARGS} {os.environ.get('WHO')}"

        class Root(LightningFlow):
            def __init__(self):
                super().__init__()
                self.w = W()
            def run(self):
                self.w.run()
                if self.w.has_succeeded:
                    self.stop(f"work saw {self.w.seen}")

        app = LightningApp(Root())
        """
    )
    cmd = ["run", "app", app, "--server", url, "--app_args", "--lr", "0.1", "--env", "WHO=ann"]
    proc = lk(*cmd, check=True, timeout=120)
    assert "work saw ['--lr', '0.1'] ann" in proc.stdout + proc.stderr
    created = get(f"{url}/api/runs/latest/events?after=0")[0]
    assert created["body"]["argv"] == ["--lr", "0.1"] and created["body"]["env"] == {"WHO": "ann"}
