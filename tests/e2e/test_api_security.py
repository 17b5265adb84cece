"""`serve` against a hostile HTTP client: a real `serve` process, requests written byte by byte.

Who attacks: another local user (loopback is shared), a web page in the user's browser (cross-origin
simple requests, DNS rebinding), anyone on the network when the server listens beyond loopback, and
a client that sends endless bodies or parameters that never end a long poll.
"""

from __future__ import annotations

import http.client
import json
import os
import pickle
import queue
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _fixtures._ports import free_port

QUICK = """
from lightning_kernel import LightningApp, LightningFlow

class Quick(LightningFlow):
    def run(self):
        print("quick says hello")
        self.stop("quick")

app = LightningApp(Quick())
"""

FOREVER = """
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
"""


class Reply:
    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.raw = resp.read()

    def json(self) -> Any:
        return json.loads(self.raw)


class Served:
    """A `lightning-kernel serve` process, and requests to it exactly as written."""

    def __init__(self, lk: Any, *args: str) -> None:
        self.lk = lk
        self.port = free_port()
        self.proc = lk.popen("serve", "--port", str(self.port), *args)
        self.printed = self._read_until("token=")
        self.token = (lk.dir / "data" / "server.token").read_text()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_until(self, marker: str, timeout: float = 90) -> list[str]:
        """serve's stdout up to the line holding ``marker`` (read in a thread: a pipe has no timeout)."""
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout or []], daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line.rstrip("\n"))
            if marker in line:
                return seen
        self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        raise AssertionError(f"serve never printed {marker!r}:\n{seen}\n{err}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        host: str | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            return Reply(conn.getresponse())
        finally:
            conn.close()

    def authed(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Reply:
        return self.request(method, path, body, {"Authorization": f"Bearer {self.token}", **headers})

    def run_app(self, source: str, name: str) -> str:
        """Submit an app with `run app --server` (which reads the token from the data dir)."""
        proc = self.lk.popen("run", "app", self.lk.app(source, name), "--server", self.url)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = self.request("GET", "/api/runs").json()
            mine = [r for r in runs if r["name"] == name.removesuffix(".py")]
            if mine and (mine[0]["last_seq"] > 3 or mine[0]["status"] != "running"):
                self._followers.append(proc)
                return str(mine[0]["id"])
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start on {self.url}")

    _followers: list[subprocess.Popen[str]] = []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.communicate(timeout=60)
        for f in self._followers:
            if f.poll() is None:
                f.kill()
            f.communicate(timeout=30)


@pytest.fixture
def served(lk):
    started: list[Served] = []

    def start(*args: str) -> Served:
        s = Served(lk, *args)
        s._followers = []
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class _Plant:
    """Unpickling this creates ``path``: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _artifacts(lk: Any) -> set[str]:
    root = lk.dir / "data" / "artifacts"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _run_status(served: Served, run_id: str) -> str:
    return str(served.request("GET", f"/api/runs/{run_id}").json()["status"])


# -- the token ---------------------------------------------------------------------------------------


def test_the_token_is_printed_in_a_url_and_kept_private(lk, served) -> None:
    token_file = lk.dir / "data" / "server.token"
    token_file.parent.mkdir()
    token_file.write_text("an old token")
    token_file.chmod(0o644)  # left readable by an older serve, or by hand
    s = served()
    assert f"    open http://127.0.0.1:{s.port}/view?token={s.token}" in s.printed
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(s.token) >= 24
    assert s.token != "an old token"

    # The browser opens the printed URL: it keeps the token as a cookie, and the URL loses it.
    opened = s.request("GET", f"/view?token={s.token}")
    assert opened.status == 303 and opened.headers["location"] == "/view"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"lk-token-{s.port}={s.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    # The page's later requests, and changes, work with the cookie alone.
    assert s.request("GET", "/view", headers=jar).status == 200
    stop = s.request("POST", "/api/runs/r-none/stop", b"{}", {**jar, "Content-Type": "application/json"})
    assert stop.status == 404  # authorised: the run does not exist
    assert (
        s.request("POST", "/api/runs/r-none/stop", b"{}", {"Content-Type": "application/json"}).status == 401
    )
    assert s.request("GET", f"/view?token={s.token[:-1]}x").status == 401


def test_every_write_needs_the_token_also_on_loopback(lk, served) -> None:
    s = served()
    run_id = s.run_app(FOREVER, "forever.py")
    wrong = {"Authorization": "Bearer " + "x" * len(s.token), "Content-Type": "application/json"}
    for headers in ({"Content-Type": "application/json"}, wrong):
        refused = s.request("POST", f"/api/runs/{run_id}/stop", b"{}", headers)
        assert refused.status == 401, refused.raw
        assert "token" in refused.json()["error"]
        submit = s.request(
            "POST", "/api/runs", pickle.dumps(1), {**headers, "Content-Type": "application/octet-stream"}
        )
        assert submit.status == 401
    assert _run_status(s, run_id) == "running"
    assert (
        s.authed("POST", f"/api/runs/{run_id}/stop", b"{}", **{"Content-Type": "application/json"}).status
        == 202
    )


def test_run_app_server_without_a_token_says_where_to_find_one(lk, served) -> None:
    s = served()
    app = lk.app(QUICK, "quick.py")
    env = {**lk.env, "LK_DATA_DIR": str(lk.dir / "elsewhere")}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_kernel", "run", "app", app, "--server", s.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        cwd=lk.dir,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "needs its token" in proc.stderr and "LK_SERVER_TOKEN" in proc.stderr
    assert str(lk.dir / "elsewhere" / "server.token") in proc.stderr
    good = subprocess.run(
        [sys.executable, "-m", "lightning_kernel", "run", "app", app, "--server", s.url],
        capture_output=True,
        text=True,
        env={**env, "LK_SERVER_TOKEN": s.token},
        timeout=90,
        cwd=lk.dir,
    )
    assert good.returncode == 0 and "quick says hello" in good.stdout, good.stderr


def test_a_pickle_without_the_token_is_never_unpickled(lk, served, tmp_path) -> None:
    s = served()
    planted = tmp_path / "planted"
    payload = pickle.dumps(_Plant(str(planted)))
    before = _artifacts(lk)
    octet = {"Content-Type": "application/octet-stream"}
    assert s.request("POST", "/api/runs", payload, octet).status == 401
    assert s.request("POST", "/api/runs", payload, {**octet, "Authorization": "Bearer nope"}).status == 401
    assert s.request("POST", f"/api/runs?token={s.token}x", payload, octet).status == 401
    # From a page of another site, even one that somehow had the token: refused before anything.
    hostile = {
        "Origin": "http://evil.example",
        "Content-Type": "text/plain",
        "Authorization": f"Bearer {s.token}",
    }
    assert s.request("POST", "/api/runs", payload, hostile).status == 403
    assert not planted.exists() and _artifacts(lk) == before
    # The control: with the token the same bytes are unpickled (and refused as no app): the proof
    # above can fail.
    loaded = s.authed("POST", "/api/runs", payload, **octet)
    assert loaded.status == 400 and "not a LightningApp" in loaded.json()["error"]
    assert planted.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("curl"),
    reason="needs root, runuser and curl",
)
def test_another_local_user_cannot_submit_or_read_the_token(lk, served, tmp_path) -> None:
    s = served()
    planted = tmp_path / "planted-by-nobody"
    os.chmod(tmp_path, 0o755)  # nobody may look here, as any local user may look in /tmp
    token_file = lk.dir / "data" / "server.token"
    cat = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(token_file)], capture_output=True, timeout=30
    )
    assert cat.returncode != 0 and s.token.encode() not in cat.stdout
    curl = subprocess.run(
        [
            "runuser",
            "-u",
            "nobody",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            "@-",
            f"{s.url}/api/runs",
        ],
        input=pickle.dumps(_Plant(str(planted))),
        capture_output=True,
        timeout=60,
    )
    assert curl.stdout == b"401", curl
    assert not planted.exists()


# -- other origins -----------------------------------------------------------------------------------


def test_cross_origin_writes_are_refused_and_do_nothing(lk, served) -> None:
    s = served()
    run_id = s.run_app(FOREVER, "forever.py")
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{s.port + 1}"):
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            r = s.request(
                "POST", f"/api/runs/{run_id}/stop", b"x=1", {"Origin": origin, "Content-Type": ctype}
            )
            assert r.status == 403 and "Origin" in r.json()["error"], (origin, r.raw)
            assert not any(k.startswith("access-control-") for k in r.headers)
    preflight = s.request(
        "OPTIONS",
        f"/api/runs/{run_id}/stop",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 403 and not any(k.startswith("access-control-") for k in preflight.headers)
    # A form post without an Origin (an old browser) carries no token, and its type is refused anyway.
    form = s.request(
        "POST",
        f"/api/runs/{run_id}/stop",
        b"x=1",
        {"Content-Type": "text/plain", "Authorization": f"Bearer {s.token}"},
    )
    assert form.status == 415
    assert _run_status(s, run_id) == "running"
    # The server's own origin is fine.
    own = s.authed(
        "POST", f"/api/runs/{run_id}/stop", b"{}", **{"Origin": s.url, "Content-Type": "application/json"}
    )
    assert own.status == 202


def test_a_host_header_of_another_name_is_refused(served) -> None:
    s = served()
    for path in ("/api/runs", "/view"):
        r = s.request("GET", path, host="evil.example")
        assert r.status == 403 and "evil.example" in r.json()["error"]
        assert s.request("GET", path, host=f"evil.example:{s.port}").status == 403
    for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", f"[::1]:{s.port}", "localhost"):
        assert s.request("GET", "/api/runs", host=host).status == 200, host


def test_beyond_loopback_reads_need_the_token(lk, served) -> None:
    s = served("--host", "0.0.0.0")
    assert any("every request needs the token" in line for line in s.printed)
    for path in (
        "/api/runs",
        "/api/runs/latest",
        "/api/runs/latest/events",
        "/api/runs/latest/logs",
        "/view",
    ):
        r = s.request("GET", path)
        assert r.status == 401 and "token" in r.json()["error"], path
    assert s.authed("GET", "/api/runs").json() == []
    cookie = s.request("GET", f"/view?token={s.token}").headers["set-cookie"].split(";")[0]
    assert s.request("GET", "/api/runs", headers={"Cookie": cookie}).status == 200


# -- bodies and parameters ---------------------------------------------------------------------------


def _send_chunked(port: int, token: str, total: int) -> bytes:
    """POST ``total`` bytes in chunks, without a Content-Length; the answer, read as soon as it comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered early
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # it answered and closed while we were still sending
        return sock.recv(65536)


def test_a_body_over_max_body_is_refused_and_nothing_is_stored(lk, served) -> None:
    s = served("--max-body", "64KB")
    before = _artifacts(lk)
    big = b"x" * (200 * 1024)
    declared = s.authed("POST", "/api/runs", big, **{"Content-Type": "application/octet-stream"})
    assert declared.status == 413 and "65536 bytes" in declared.json()["error"]
    streamed = _send_chunked(s.port, s.token, 4 << 20)
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
    assert _artifacts(lk) == before
    # Under the limit it is read (and refused for what it is).
    small = s.authed("POST", "/api/runs", b"x" * 1000, **{"Content-Type": "application/octet-stream"})
    assert small.status == 400 and "not a pickled LightningApp" in small.json()["error"]


def test_bad_query_parameters_are_a_400_naming_them(served) -> None:
    s = served()
    run_id = s.run_app(QUICK, "quick.py")
    bad = [
        (f"/api/runs/{run_id}/events?wait=nan", "wait"),
        (f"/api/runs/{run_id}/events?wait=inf", "wait"),
        (f"/api/runs/{run_id}/events?wait=1e9", "wait"),
        (f"/api/runs/{run_id}/logs?wait=-1", "wait"),
        (f"/api/runs/{run_id}/events?after=-1", "after"),
        (f"/api/runs/{run_id}/logs?after=x", "after"),
        (f"/api/runs/{run_id}/events?after=99999999999999999999999", "after"),
        ("/api/runs?limit=abc", "limit"),
        (f"/api/runs/{run_id}/events?limit=0", "limit"),
        (f"/api/runs/{run_id}/state?at=abc", "at"),
        (f"/api/runs/{run_id}/state?at=0", "at"),
        (f"/api/runs/{run_id}/state?at=99999999", "at"),
    ]
    for path, name in bad:
        r = s.request("GET", path)
        assert r.status == 400, (path, r.raw)
        assert r.json()["parameter"] == name and name in r.json()["error"], (path, r.raw)
    nope = s.request("GET", f"/api/runs/{run_id}/logs?component=root.nope")
    assert nope.status == 404 and "its components are: root" in nope.json()["error"]
    assert s.request("GET", f"/api/runs/{run_id}/events?wait=0.5&after=0&limit=2").status == 200


def _context_switches(pid: int) -> int:
    """Every context switch of every thread of ``pid`` so far: a count of work done, not of time."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except OSError:  # a thread that just ended
            continue
        total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    return total


def _switches_in(pid: int, seconds: float) -> int:
    start = _context_switches(pid)
    time.sleep(seconds)  # a window to count in, not a wait for something to happen
    return _context_switches(pid) - start


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads' work in /proc")
def test_a_long_poll_ends_when_its_client_leaves(served) -> None:
    s = served()
    run_id = s.run_app(QUICK, "quick.py")
    clients = []
    for _ in range(50):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        c.sendall(
            f"GET /api/runs/{run_id}/logs?after={10**12}&wait=60 HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode()
        )
        clients.append(c)
    assert s.request("GET", "/api/runs").status == 200  # the polls are in: a later request was answered
    busy = _switches_in(s.proc.pid, 1.0)  # fifty polls look for new lines, each a few times a second
    for c in clients:
        c.close()
    deadline = time.monotonic() + 30  # well before the polls' own 60 s are up
    quiet = busy
    while time.monotonic() < deadline and quiet * 10 >= busy:
        quiet = _switches_in(s.proc.pid, 1.0)
    assert quiet * 10 < busy, f"the polls kept going after their clients left: {quiet} vs {busy} switches/s"


# -- stopping ----------------------------------------------------------------------------------------


def test_sigterm_during_a_long_poll_and_a_slow_upload_stops_serve(lk, served) -> None:
    s = served()
    run_id = s.run_app(FOREVER, "forever.py")
    last = s.request("GET", f"/api/runs/{run_id}").json()["last_seq"]
    answers: dict[str, Any] = {}

    def long_poll() -> None:
        try:
            # after a seq far ahead: nothing comes, the poll holds its full minute
            answers["poll"] = s.request("GET", f"/api/runs/{run_id}/logs?after={last + 10**9}&wait=60")
        except OSError as exc:
            answers["poll"] = exc

    poller = threading.Thread(target=long_poll)
    poller.start()
    upload = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    upload.sendall(
        f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nAuthorization: Bearer {s.token}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100000000\r\n\r\n".encode()
        + b"x" * 100_000
    )
    # Both are in flight once a later request has been answered (one event loop serves them all).
    assert s.request("GET", "/api/runs").status == 200
    started = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.communicate(timeout=60)
    took = time.monotonic() - started
    poller.join(timeout=30)
    upload.close()
    assert s.proc.returncode == 0
    assert took < 10, f"serve took {took:.1f} s to stop"  # 2 s on a quiet machine; loose on purpose
    poll = answers["poll"]
    assert isinstance(poll, Reply) and poll.status == 200 and poll.json() == []
    # The hosted run was interrupted cleanly, to be resumed by the next serve.
    runs = lk.json_lines("runs")
    assert [(r["status"], r["message"]) for r in runs if r["id"] == run_id] == [
        ("interrupted", "serve shutdown")
    ]


BLOCKING = """
import os, time
from lightning_kernel import LightningApp, LightningFlow

class Root(LightningFlow):
    def run(self):
        open(os.environ["LK_TEST_BLOCKING"], "w").close()
        time.sleep(600)

app = LightningApp(Root())
"""


def test_sigterm_stops_serve_while_a_flow_blocks_in_root_run(lk, served) -> None:
    # The flow runs on serve's loop: while it blocks, nothing else there answers (the API neither),
    # and only a plain signal handler can get it out.
    marker = lk.dir / "blocking"
    lk.env["LK_TEST_BLOCKING"] = str(marker)
    s = served()
    follower = lk.popen("run", "app", lk.app(BLOCKING, "blocking.py"), "--server", s.url)
    s._followers.append(follower)
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert time.monotonic() < deadline, "the flow never reached its blocking call"
        time.sleep(0.05)
    started = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert s.proc.returncode == 0
    assert took < 10, f"serve took {took:.1f} s to stop"
    runs = lk.json_lines("runs")
    assert [(r["status"], r["message"]) for r in runs if r["name"] == "blocking"] == [
        ("interrupted", "serve shutdown")
    ]
