"""``lightning_kernel.Client(url)`` on a real ``serve``: the same typed results and errors as locally,
events and logs followed over server-sent events, the OpenAPI description, and the CLI through it."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from _fixtures._ports import free_port, wait_port
from _sdk_helpers import GATED, end_kernel, until_running
from lightning_kernel import Client
from lightning_kernel._config import Config
from lightning_kernel._records import EventRecord, LogLine, RunInfo
from lightning_kernel._server import Server
from lightning_kernel._sse import Parser
from lightning_kernel.errors import ComponentNotFound, KernelError, NotAuthorized, ParameterError, RunNotFound

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sse(url: str, headers: dict[str, str] | None = None) -> tuple[str, list]:
    """The content type and the messages of the stream at ``url``, read to its end."""
    req = urllib.request.Request(url, headers=headers or {})
    parser = Parser()
    with urllib.request.urlopen(req, timeout=60) as resp:
        messages = [m for raw in resp if (m := parser.feed(raw.decode())) is not None]
        return resp.headers["content-type"], messages


def test_the_sdk_over_http(lk, serve, data_dir):
    client = Client(serve, data_dir=data_dir)  # the token: <data dir>/server.token
    run = client.submit(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"), name="sdk")
    assert isinstance(run, RunInfo) and run.name == "sdk"

    events = list(client.events(run.id))  # the SSE stream, to the run's end
    assert all(isinstance(e, EventRecord) and e.run_id == run.id for e in events)
    assert events[0].type == "run.created" and events[-1].type == "run.ended"
    assert (
        client.history(run.id) == events
        and client.history(run.id, after=events[2].seq, limit=3) == events[3:6]
    )
    assert client.run("latest").status == "succeeded" and [r.id for r in client.runs()] == [run.id]
    state = client.state(run.id)
    assert state.status == "succeeded" and state.root["works"]["w_1"]["vars"]["counter"] >= 5
    at = events[-1].seq
    assert client.state(run.id, at=at).to_json() == state.to_json()
    lines = list(client.logs(run.id, "root", follow=True))
    assert all(isinstance(x, LogLine) for x in lines) and lines[-1].line == "done"
    assert list(client.logs(run.id, "root")) == lines

    # The same as the data dir says, read locally.
    local = Client(data_dir=data_dir)
    assert local.history(run.id) == events and local.state(run.id) == state
    assert list(local.logs(run.id)) == list(client.logs(run.id))

    with pytest.raises(RunNotFound, match="no run 'nope'"):
        client.state("nope")
    with pytest.raises(RunNotFound):
        client.events("nope")
    with pytest.raises(ComponentNotFound) as comp:
        client.logs(run.id, "root.nope")
    assert comp.value.known == ["root", "root.w_1", "root.w_2"]
    with pytest.raises(ParameterError, match=f"at={at + 1} is past") as param:
        client.state(run.id, at=at + 1)
    assert param.value.name == "at"
    with pytest.raises(KernelError, match="already ended"):
        client.stop(run.id)

    # Reads need no token on loopback; a change does, and a wrong one is refused.
    nowhere = Client(serve, data_dir=str(lk.dir / "nowhere"))
    assert nowhere.run(run.id).id == run.id
    with pytest.raises(NotAuthorized, match="needs its token"):
        nowhere.submit(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    with pytest.raises(NotAuthorized, match="refused the token from token="):
        Client(serve, token="not-the-token").resume(run.id)


def test_the_event_stream(lk, serve, data_dir):
    client = Client(serve, data_dir=data_dir)
    run = client.submit(lk.app((EXAMPLES / "counter.py").read_text(), "counter.py"))
    kind, messages = sse(f"{serve}/api/runs/{run.id}/events/stream")
    assert kind.startswith("text/event-stream")
    *events, end = messages
    assert {m.event for m in events} == {"event"} and end.event == "end"
    assert end.data["status"] == "succeeded" and end.data["seq"] == events[-1].data["seq"]
    assert [m.data["seq"] for m in events] == [e.seq for e in client.history(run.id)]
    assert all(m.id == str(m.data["seq"]) for m in events)
    # A reconnecting client says where it was.
    _, later = sse(f"{serve}/api/runs/{run.id}/events/stream", {"Last-Event-ID": events[3].id or ""})
    assert [m.data["seq"] for m in later[:-1]] == [m.data["seq"] for m in events[4:]]
    _, logs = sse(f"{serve}/api/runs/latest/logs/stream?component=root")
    assert logs[-1].event == "end" and logs[-2].data["line"] == "done"


def test_openapi_lists_every_route(serve):
    with urllib.request.urlopen(f"{serve}/api/openapi.json", timeout=30) as r:
        spec = json.loads(r.read())
    assert spec["openapi"].startswith("3.")
    app = Server(Config.from_env(data_dir="/nonexistent-never-started"), "127.0.0.1").app()
    # A Starlette converter ({name:path}) is no part of an OpenAPI path.
    routes = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), m.lower())
        for route in app.routes
        for m in route.methods - {"HEAD"}
    }
    described = {(path, m) for path, ops in spec["paths"].items() for m in ops}
    assert described == routes
    for path, ops in spec["paths"].items():
        for op in ops.values():
            named = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert named == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


def test_streams_and_changes_need_the_token_beyond_loopback(tmp_path):
    from starlette.testclient import TestClient

    for host, read in (("127.0.0.1", None), ("0.0.0.0", 401)):
        server = Server(Config.from_env(data_dir=str(tmp_path)), host, port=7501)
        client = TestClient(server.app(), base_url="http://127.0.0.1:7501")
        assert client.post("/api/runs/r1/resume").status_code == 401
        assert client.post("/api/runs/r1/fork", json={"at": 1}).status_code == 401
        assert client.post("/api/runs/r1/replay").status_code == 401
        if read is not None:
            assert client.get("/api/runs/r1/events/stream").status_code == read
            assert client.get("/api/openapi.json").status_code == read
        refused = client.post(
            "/api/runs/r1/resume",
            headers={"Authorization": f"Bearer {server.token}", "Origin": "http://evil.example"},
        )
        assert refused.status_code == 403  # a cross-origin write, even with the token


def test_resume_and_stop_over_http_and_the_cli_through_the_sdk(lk, data_dir):
    # A run interrupted by its own kernel (SIGTERM), then carried on by a serve.
    local = Client(data_dir=data_dir)
    run = local.submit(lk.app(GATED.format(gate=str(lk.dir / "gate")), "gated.py"))
    until_running(local, run.id)
    end_kernel(lk.dir / "data")
    interrupted = local.run(run.id)
    assert interrupted.status == "interrupted"

    port = free_port()
    server = lk.popen("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, timeout=60)
        client = Client(url, data_dir=data_dir)
        assert client.run(run.id).status == "interrupted"  # not a serve's run: not resumed at its start
        assert client.resume(run.id).status == "running"
        with pytest.raises(KernelError, match="running on this server"):
            client.resume(run.id)
        until_running(client, run.id, after=interrupted.last_seq)  # the Work runs again, on the server

        for args in (["runs"], ["history", run.id], ["logs", run.id]):
            assert lk.json_lines(*args, "--server", url) == lk.json_lines(*args)
        assert lk.state(run.id) == json.loads(
            lk("state", run.id, "--json", "--server", url, check=True).stdout
        )

        stopped = lk("stop", run.id, "--server", url, check=True)
        assert f"run {run.id} stopped" in stopped.stderr
        assert client.run(run.id).status == "stopped"
        assert list(client.events(run.id))[-1].body["status"] == "stopped"
        missing = lk("state", "r-missing", "--server", url)
        assert missing.returncode == 1 and "no run 'r-missing'" in missing.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_sigterm_ends_serve_while_a_stream_follows_a_run(lk, data_dir):
    import http.client

    port = free_port()
    server = lk.popen("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, timeout=60)
        client = Client(url, data_dir=data_dir)
        run = client.submit(lk.app(GATED.format(gate=str(lk.dir / "never")), "gated.py"))
        until_running(client, run.id)
        parser = Parser()
        messages = []
        with urllib.request.urlopen(f"{url}/api/runs/{run.id}/events/stream", timeout=60) as resp:
            while not messages:  # the stream is open: it sent the run's first event
                message = parser.feed(resp.readline().decode())
                if message is not None:
                    messages.append(message)
            server.send_signal(signal.SIGTERM)
            try:
                messages += [m for raw in resp if (m := parser.feed(raw.decode())) is not None]
            except http.client.IncompleteRead:
                pass  # cut short as the server went: a client reconnects after the last id it saw
        _, err = server.communicate(timeout=60)
        assert server.returncode == 0, err
        assert messages[0].data["type"] == "run.created"
        assert all(m.event != "end" for m in messages)  # stopped, not ended: the run did not end
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=30)
    assert Client(data_dir=data_dir).run(run.id).status == "interrupted"


def test_a_follower_carries_on_across_a_restart_of_serve(lk, data_dir):
    import threading

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    servers = [lk.popen("serve", "--port", str(port))]
    try:
        wait_port(port, timeout=60)
        client = Client(url, data_dir=data_dir)
        gate = lk.dir / "gate"
        run = client.submit(lk.app(GATED.format(gate=str(gate)), "gated.py"))
        until_running(client, run.id)
        seen: list = []

        def follow() -> None:
            try:
                seen.extend(client.events(run.id))
            except Exception as exc:
                seen.append(exc)

        follower = threading.Thread(target=follow)
        follower.start()
        servers[0].send_signal(signal.SIGTERM)  # the run is interrupted ("serve shutdown")...
        servers[0].communicate(timeout=60)
        interrupted = Client(data_dir=data_dir).run(run.id)  # no serve up: read where it stopped
        assert interrupted.status == "interrupted"
        servers.append(lk.popen("serve", "--port", str(port)))  # ...and resumed by the next serve
        wait_port(port, timeout=60)
        until_running(client, run.id, after=interrupted.last_seq)
        gate.touch()
        follower.join(timeout=90)
        assert not follower.is_alive(), "the follower did not end with the run"
        assert all(not isinstance(e, Exception) for e in seen), seen
        types = [e.type for e in seen]
        assert types[0] == "run.created" and types[-1] == "run.ended"
        assert types.index("run.interrupted") < types.index("run.resumed")
        assert [e.seq for e in seen] == [e.seq for e in client.history(run.id)]  # each once, in order
    finally:
        for s in servers:
            if s.poll() is None:
                s.send_signal(signal.SIGTERM)
            s.communicate(timeout=60)


def test_resume_on_a_server_from_the_cli(lk, data_dir):
    local = Client(data_dir=data_dir)
    gate = lk.dir / "gate"
    run = local.submit(lk.app(GATED.format(gate=str(gate)), "gated.py"))
    until_running(local, run.id)
    end_kernel(lk.dir / "data")
    interrupted = local.run(run.id)
    port = free_port()
    server = lk.popen("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, timeout=60)
        follower = lk.popen("resume", run.id, "--server", url)  # resumes it there, prints what it prints
        until_running(Client(url, data_dir=data_dir), run.id, after=interrupted.last_seq)
        gate.touch()
        out, err = follower.communicate(timeout=90)
        assert follower.returncode == 0, err
        assert f"run {run.id} resumed on {url}" in err
        # Only what the run printed since it resumed: the Work's line again, then the flow's.
        assert out.splitlines() == ["waiting for the gate", "through the gate", "gate opened"]
        assert local.run(run.id).status == "succeeded"
        again = lk("resume", run.id, "--server", url)
        assert again.returncode == 1 and "already ended (succeeded)" in again.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
