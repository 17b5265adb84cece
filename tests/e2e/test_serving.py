"""Works that serve: ``work.host``/``port``/``url``, reached by the flow, another Work and a client."""

from __future__ import annotations

import re

import httpx

SERVING = """
import http.server
import urllib.request
from lightning_kernel import LightningApp, LightningFlow, LightningWork

class Server(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.hits = 0
        self.seen_port = 0
    def run(self):
        work = self
        self.seen_port = self.port  # chosen before run()
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                work.hits += 1
                body = f"hello from {work.name} #{work.hits}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer((self.host, self.port), Handler).serve_forever()

class Client(LightningWork):
    def __init__(self):
        super().__init__()
        self.body = ""
    def run(self, url):
        import time
        for _ in range(200):
            try:
                self.body = urllib.request.urlopen(url, timeout=5).read().decode()
                return
            except OSError:
                time.sleep(0.05)  # the server may still be starting
        raise RuntimeError(f"nothing answered at {url}")

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.server = Server()
        self.client = Client()
        self.url = ""
    def run(self):
        self.server.run()
        if self.server.url:
            self.url = self.server.url
            self.client.run(self.server.url)
        if self.client.has_succeeded and self.server.hits >= 2:
            self.stop(f"client got: {self.client.body}")

app = LightningApp(Root())
"""


def test_a_work_serving_http_is_reached_at_its_url_by_another_work_and_a_client(lk):
    proc = lk.popen("run", "app", lk.app(SERVING))
    try:
        url = ""
        assert proc.stderr is not None
        for line in proc.stderr:  # the kernel says it once the server accepts connections
            found = re.search(r"root\.server serves at (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url.startswith("http://127.0.0.1:"), url
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and got.text.startswith("hello from root.server #")
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "client got: hello from root.server #" in out
    state = lk.state()
    server = state["root"]["works"]["server"]["vars"]
    assert server["hits"] >= 2
    port = int(url.rsplit(":", 1)[1])
    assert server["seen_port"] == port
    assert state["root"]["vars"]["url"] == url
    endpoints = [e["body"] for e in lk.json_lines("history", "latest") if e["type"] == "work.endpoint"]
    assert {e["work"] for e in endpoints} == {"root.server", "root.client"}
    assert any(e["listening"] and e["work"] == "root.server" for e in endpoints)


PYTHON_SERVER = """
from pydantic import BaseModel
from lightning_kernel import LightningApp, LightningFlow, LightningWork
from lightning_kernel.components.serve import PythonServer, Text

class Doubler(PythonServer):
    def setup(self):
        self._factor = 2
    def predict(self, request):
        return {"text": request.text * self._factor}

class Client(LightningWork):
    def __init__(self):
        super().__init__()
        self.answers = []
    def run(self, url):
        import json, urllib.request, urllib.error
        def post(body):
            req = urllib.request.Request(url + "/predict", data=json.dumps(body).encode(), method="POST")
            req.add_header("Content-Type", "application/json")
            try:
                return urllib.request.urlopen(req, timeout=10).read().decode()
            except urllib.error.HTTPError as exc:
                return f"HTTP {exc.code}"
        self.answers = [post({"text": "ab"}), post({"text": 3})]

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.server = Doubler(input_type=Text, output_type=Text)
        self.client = Client()
    def run(self):
        self.server.run()
        if self.server.ready:
            self.client.run(self.server.url)
        if self.client.has_succeeded:
            self.stop(" | ".join(self.client.answers))

app = LightningApp(Root())
"""


def test_a_python_server_answers_predict_with_typed_requests(lk):
    proc = lk("run", "app", lk.app(PYTHON_SERVER), check=True)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == '{"text":"abab"} | HTTP 422', last
