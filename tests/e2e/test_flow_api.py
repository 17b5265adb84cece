"""The flow's HTTP API, commands and layout, end to end: `run app` serves them, a real HTTP client
(httpx) and `lightning-kernel run command` reach them, and the log records every request as events
that `state` folds and `replay` re-runs."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _fixtures._ports import free_port, wait_port

SHOP = """
from pydantic import BaseModel
from lightning_kernel import LightningApp, LightningFlow
from lightning_kernel.api import Get, Post
from lightning_kernel.commands import ClientCommand


class Item(BaseModel):
    name: str
    qty: int = 1


class Restock(ClientCommand):
    \"\"\"Restock an item, from the command line.\"\"\"

    def run(self):
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--name", required=True)
        parser.add_argument("--qty", type=int, default=1)
        args = parser.parse_args()
        print("restocked:", self.invoke_handler(config=Item(name=args.name, qty=args.qty)))


class Shop(LightningFlow):
    def __init__(self):
        super().__init__()
        self.customers = []
        self.stock = 0

    def run(self):
        if "closing" in self.customers:
            self.stop(f"closed with {self.stock} in stock")

    def arrive(self, name: str):
        self.customers.append(name)
        return {"customers": len(self.customers)}

    def deliver(self, item: Item):
        self.stock += item.qty
        return {"stock": self.stock, "last": item.name}

    def who(self):
        return {"customers": self.customers, "stock": self.stock}

    def broken(self):
        raise RuntimeError("the till is jammed")

    def hello(self, who: str, times: int = 1):
        \"\"\"Greet someone.\"\"\"
        return " ".join(["hello " + who] * times)

    def configure_api(self):
        return [
            Post("/api/v1/arrive", self.arrive),
            Post("/api/v1/deliver", self.deliver),
            Get("/api/v1/who", self.who),
            Post("/api/v1/broken", self.broken),
            Post("/api/code", self.arrive),  # the kernel's own route: the flow cannot take it over
        ]

    def configure_commands(self):
        return [{"hello": self.hello}, {"restock": Restock(self.deliver)}]


app = LightningApp(Shop())
"""


class Running:
    """`lightning-kernel run app` in the background, its stderr read as it comes."""

    def __init__(self, lk: Any, *args: str) -> None:
        self.proc = lk.popen("run", "app", *args)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line {pattern!r} on stderr: {''.join(self.err)}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            found = re.search(pattern, line)
            if found:
                return found

    def url(self) -> tuple[str, str]:
        """The run's server and its token, from the line `run app` prints."""
        found = self.wait_line(r"View it in your browser: (http://127\.0\.0\.1:\d+)/view\?token=(\S+)")
        return found.group(1), found.group(2)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.communicate(timeout=30)


@pytest.fixture
def shop(lk):
    running = Running(lk, lk.app(SHOP, name="shop.py"))
    try:
        yield running
    finally:
        running.kill()


def test_api_requests_change_the_flow_state_as_events_and_replay_clean(lk, shop):
    url, token = shop.url()
    # A handler runs the flow's code on what a request says: a write, which needs the token even on
    # loopback (every local user reaches 127.0.0.1); reads do not.
    assert httpx.post(f"{url}/api/v1/arrive", params={"name": "mallory"}).status_code == 401
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        # Query and JSON body both work.
        assert http.post("/api/v1/arrive", params={"name": "ann"}).json() == {"customers": 1}
        assert http.post("/api/v1/arrive", json={"name": "bob"}).json() == {"customers": 2}
        assert http.post("/api/v1/deliver", json={"name": "pen", "qty": 3}).json() == {
            "stock": 3,
            "last": "pen",
        }
        assert http.get("/api/v1/who").json() == {"customers": ["ann", "bob"], "stock": 3}

        broken = http.post("/api/v1/broken")
        assert broken.status_code == 500 and "RuntimeError: the till is jammed" in broken.json()["error"]
        bad = http.post("/api/v1/deliver", json={"name": "pen", "qty": "many"})
        assert bad.status_code == 422 and "qty" in bad.json()["error"]
        missing = http.post("/api/v1/arrive")
        assert missing.status_code == 422 and "name" in missing.json()["error"]
        assert http.post("/api/v1/nowhere").status_code == 404
        assert http.get("/api/v1/arrive").status_code == 405

        # The run went on after the handler raised; the prefixed path reaches the same flow.
        run_id = lk.json_lines("runs")[0]["id"]
        assert http.post(f"/runs/{run_id}/api/v1/arrive", params={"name": "cy"}).json() == {"customers": 3}
        # Answered only once recorded: `state` shows the change at once.
        assert lk.state()["root"]["vars"] == {"customers": ["ann", "bob", "cy"], "stock": 3}
        assert http.post("/api/v1/arrive", params={"name": "closing"}).status_code == 200

    code, _, err = shop.finish()
    assert code == 0, err
    final = lk.state()
    assert final["run"]["status"] == "succeeded" and final["run"]["message"] == "closed with 3 in stock"
    history = lk.json_lines("history", "latest")
    received = [e for e in history if e["type"] == "flow.request_received"]
    answered = {e["body"]["id"]: e for e in history if e["type"] == "flow.request_answered"}
    assert len(received) == 9 and set(answered) == {e["body"]["id"] for e in received}
    for request in received:
        answer = answered[request["body"]["id"]]
        assert answer["input_seq"] == request["seq"], "an answer is computed on the state at its request"
    change = next(
        e for e in history if e["type"] == "flow.state_changed" and "stock" in e["body"]["changes"]["root"]
    )
    assert change["input_seq"] == next(r["seq"] for r in received if r["body"]["route"] == "/api/v1/deliver")

    out = lk("replay", "latest")
    assert out.returncode == 0 and "no difference" in out.stdout, out.stdout + out.stderr
    # Replay re-runs the handlers: one that now computes something else is named at its event.
    changed = lk.app(SHOP.replace("self.stock += item.qty", "self.stock += 2 * item.qty"), name="changed.py")
    out = lk("replay", "latest", "--app", changed)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"at seq {change['seq']}" in out.stdout + out.stderr and "root.stock" in out.stdout + out.stderr


def test_commands_through_run_command(lk, shop):
    shop.url()
    listing = lk("run", "command", "--help", check=True).stdout
    assert re.search(r"hello\s+Greet someone\.", listing) and re.search(r"restock\s+Restock an item", listing)
    usage = lk("run", "command", "hello", "--help", check=True).stdout
    assert "--who STR" in usage and "[--times INT]" in usage and "default: 1" in usage

    said = lk("run", "command", "hello", "--who", "dee", "--times", "2", check=True).stdout
    assert said.strip() == "hello dee hello dee"
    # A ClientCommand runs here, with its own arguments, and reaches its handler in the flow.
    out = lk("run", "command", "restock", "--name", "ink", "--qty", "4", check=True).stdout
    assert "restocked: {'stock': 4, 'last': 'ink'}" in out
    assert lk.state()["root"]["vars"]["stock"] == 4

    nope = lk("run", "command", "nope")
    assert nope.returncode == 1 and "has no command 'nope'" in nope.stderr and "hello" in nope.stderr
    lacking = lk("run", "command", "hello")
    assert lacking.returncode == 1 and "needs --who" in lacking.stderr
    commands = [e for e in lk.json_lines("history", "latest") if e["type"] == "flow.request_received"]
    assert [e["body"]["route"] for e in commands] == ["/command/hello", "/command/restock"]
    assert lk("replay", "latest", check=True).stdout.endswith("no difference\n")


def test_flow_routes_keep_the_guard(lk, shop):
    url, token = shop.url()
    with httpx.Client(base_url=url, timeout=30) as http:
        arrive = "/api/v1/arrive?name=eve"
        assert http.post(arrive, headers={"Origin": "http://evil.example"}).status_code == 403
        assert http.post(arrive, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert http.post(arrive, headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
        auth = {"Authorization": f"Bearer {token}"}
        form = {**auth, "Content-Type": "text/plain"}
        assert http.post(arrive, content=b"x", headers=form).status_code == 415
        assert http.post(arrive, headers={**auth, "Origin": "http://evil.example"}).status_code == 403
        assert http.post(arrive).status_code == 401
        # A route of the kernel's own stays the kernel's, with its token, whatever the flow declares.
        assert http.post("/api/code", params={"name": "eve"}).status_code == 401
        assert http.post(f"/api/runs/{lk.json_lines('runs')[0]['id']}/stop").status_code == 401
        assert http.get("/api/v1/who").json()["customers"] == []
        assert http.post(arrive, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.post(arrive, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    token_file = lk.dir / "data" / "server.token"
    assert token_file.read_text() == token and (token_file.stat().st_mode & 0o777) == 0o600


LAYOUT = """
import http.server
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.frontend import StaticWebFrontend


class Pages(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)

    def run(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"served by the work")

        http.server.HTTPServer((self.host, self.port), Handler).serve_forever()


class Board(LightningFlow):
    def configure_layout(self):
        return StaticWebFrontend("board")


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.board = Board()
        self.pages = Pages()

    def run(self):
        self.pages.run()

    def configure_layout(self):
        return [
            {"name": "Board", "content": self.board},
            {"name": "Pages", "content": self.pages},
            {"name": "Docs", "content": "https://lightning.ai/docs"},
        ]


app = LightningApp(Root())
"""


def test_layout_tabs_static_frontend_and_work_url(lk):
    board = lk.dir / "board"
    (board / "css").mkdir(parents=True)
    (board / "index.html").write_text("<h1>the board</h1>")
    (board / "css" / "a.css").write_text("h1{}")
    (lk.dir / "secret.txt").write_text("not for the web")
    (board / "out.txt").symlink_to("../secret.txt")  # a link out of the frontend's folder
    running = Running(lk, lk.app(LAYOUT))
    try:
        url, _ = running.url()
        with httpx.Client(base_url=url, timeout=30) as http:
            run_id = lk.json_lines("runs")[0]["id"]
            # Wait (on the log, not the clock) for the Work to say it listens.
            seen = 0
            work_url = ""
            while not work_url:
                events = http.get(f"/api/runs/{run_id}/events", params={"after": seen, "wait": 30}).json()
                assert events, "no event within 30 s"
                seen = events[-1]["seq"]
                work_url = next(
                    (
                        e["body"]["url"]
                        for e in events
                        if e["type"] == "work.endpoint" and e["body"]["listening"]
                    ),
                    "",
                )
            for page in ("/view", f"/runs/{run_id}/view", "/runs/latest/view"):
                got = http.get(page)
                assert got.status_code == 200 and got.headers["x-frame-options"] == "DENY"
                frames = re.findall(r'<iframe src="([^"]+)" title="([^"]+)"', got.text)
                assert frames == [
                    (f"/runs/{run_id}/ui/root.board/", "Board"),
                    (work_url, "Pages"),
                    ("https://lightning.ai/docs", "Docs"),
                ], got.text
            assert httpx.get(work_url, timeout=10).text == "served by the work"

            front = f"/runs/{run_id}/ui/root.board"
            index = http.get(front + "/")
            assert index.text == "<h1>the board</h1>" and index.headers["x-frame-options"] == "SAMEORIGIN"
            assert http.get(front).status_code == 307
            assert http.get(front + "/css/a.css").headers["content-type"].startswith("text/css")
            for escape in (
                "/../../secret.txt",
                "/%2e%2e/%2e%2e/secret.txt",
                "/out.txt",
                "/css/../../secret.txt",
            ):
                refused = httpx.get(url + front + escape, timeout=10)
                assert refused.status_code == 404 and "not for the web" not in refused.text, escape
            raw = _raw_get(url, front + "/../../secret.txt")
            assert "not for the web" not in raw and raw.startswith("HTTP/1.1 404")
            assert http.get(f"/runs/{run_id}/ui/root.pages/").status_code == 404  # a Work has no frontend
    finally:
        running.kill()


def _raw_get(url: str, path: str) -> str:
    """A GET of ``path`` exactly as written (no client normalises its ``..``)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


QUIET = """
from lightning_kernel import LightningApp, LightningFlow

class Quiet(LightningFlow):
    def run(self):
        self.stop("quiet")

app = LightningApp(Quiet())
"""


def test_no_ui_serves_nothing_and_a_taken_port_moves_the_ui(lk):
    proc = lk("run", "app", lk.app(QUIET), "--no-ui", check=True)
    assert "View it in your browser" not in proc.stderr
    assert not (lk.dir / "data" / "server.json").exists()

    # Its port (LK_PORT, 7501 by default) taken, run app serves on a free port instead. The test holds
    # a port of its own: 7501 may come and go with other programs on this machine.
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        lk.env["LK_PORT"] = str(taken)
        running = Running(lk, lk.app(SHOP, name="shop.py"), "--open-ui", "false")
        try:
            url, _ = running.url()
            assert not url.endswith(f":{taken}") and re.search(r":\d+$", url), url
            assert json.loads((lk.dir / "data" / "server.json").read_text())["url"] == url
        finally:
            running.kill()
    finally:
        holder.close()


def test_serve_beyond_loopback_prefixes_runs_and_wants_the_token(lk):
    port = free_port()
    serve = lk.popen("serve", "--host", "0.0.0.0", "--port", str(port))
    try:
        wait_port(port, timeout=30)
        url = f"http://127.0.0.1:{port}"
        token = (lk.dir / "data" / "server.token").read_text()
        follower = Running(lk, lk.app(SHOP, name="shop.py"), "--server", url)
        run_id = follower.wait_line(r"run (\S+) submitted to").group(1)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, timeout=30) as http:
            arrive = f"/runs/{run_id}/api/v1/arrive"
            assert http.post(arrive, params={"name": "fay"}).status_code == 401
            assert http.post(arrive, params={"name": "fay"}, headers=auth).json() == {"customers": 1}
            assert http.post("/api/v1/arrive", params={"name": "fay"}, headers=auth).status_code == 404
            assert http.post(arrive, params={"name": "closing"}, headers=auth).status_code == 200
        code, _, err = follower.finish()
        assert code == 0, err
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)


def test_frontends_name_their_missing_extra(monkeypatch):
    from lightning_kernel.errors import MissingExtra
    from lightning_kernel.frontend import JustPyFrontend, PanelFrontend, StreamlitFrontend
    from lightning_kernel.frontend.stream_lit import StreamlitFrontend as Same
    from lightning_kernel.frontend.web import StaticWebFrontend

    assert Same is StreamlitFrontend and StaticWebFrontend("ui").serve_dir == "ui"
    for cls, package, install in (
        (StreamlitFrontend, "streamlit", "lightning-kernel\\[streamlit\\]"),
        (PanelFrontend, "panel", "lightning-kernel\\[panel\\]"),
        (JustPyFrontend, "justpy", "justpy"),
    ):
        monkeypatch.setitem(sys.modules, package, None)  # not installed, as the import system says it
        with pytest.raises(MissingExtra, match=f"{cls.__name__} needs {package}.*pip install '{install}'"):
            cls(lambda state: None)


def test_run_command_without_a_server_says_how_to_start_one(lk):
    out = lk("run", "command", "hello")
    assert out.returncode == 1 and "no `lightning-kernel run app`" in out.stderr and "--server" in out.stderr
