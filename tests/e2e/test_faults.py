"""Faults end cleanly (issue 7, point 5): NATS killed under a run, URLs that are not NATS, a database
that is unreachable, full or read-only, a full disk under the data dir, and SIGTERM whatever happens.
Real nats-servers killed with SIGKILL, real SQLite on a small tmpfs, real PostgreSQL."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _guard
import psycopg
import pytest
from _fixtures._ports import free_port
from _guard import (
    COUNTER,
    NatsServer,
    kill_all,
    processes_with_env,
    runs_of,
    wait_until,
    work_var,
)
from conftest import LK

pg_database = _guard.pg_database  # a fixture

SLEEPY = """
import os, time
from lightning_kernel import LightningApp, LightningFlow

class Root(LightningFlow):
    def run(self):
        print("in run()", flush=True)
        open(os.environ["MARK"], "w").close()
        time.sleep(30)
        self.stop("slept")

app = LightningApp(Root())
"""


def counting(lk: LK, steps: int = 10_000, **env: str) -> str:
    lk.env.update({"COUNT_FILE": str(lk.dir / "count"), "STEPS": str(steps), **env})
    return lk.app(COUNTER)


def left_of(data_dir: Path) -> list[tuple[int, str]]:
    return processes_with_env("LK_DATA_DIR", str(data_dir))


def assert_nothing_left(data_dir: Path, within: float = 15) -> float:
    """Every process the kernel started (nats-server, forkserver, workers) is gone within ``within`` s."""
    started = time.monotonic()
    deadline = started + within
    while left_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = left_of(data_dir)
    kill_all(left)
    assert left == [], f"left running after the kernel exited: {left}"
    return time.monotonic() - started


def ended_within(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str, float]:
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running {timeout} s later:\n{out}\n{err}") from None
    return proc.returncode, out, err, time.monotonic() - started


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    dirs: list[Path] = []
    try:
        yield dirs
    finally:
        for d in dirs:
            kill_all(left_of(d))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs (8 MB) of the test's own, unmounted afterwards."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        for pid, _ in processes_with_env("LK_DATA_DIR", str(where / "data")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 10, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    return filler


def resumed_to_the_end(lk: LK, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    done = lk("resume", "latest", timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    [run] = runs_of(lk)[:1]
    assert run["status"] == "succeeded", run
    return done


# -- NATS lost ----------------------------------------------------------------------------------------


def test_kill_9_of_the_embedded_nats_server_ends_the_run_and_resume_carries_on(lk, cleanup):
    data = lk.dir / "data"
    cleanup.append(data)
    hold = lk.dir / "hold"
    hold.touch()
    proc = lk.popen("run", "app", counting(lk, 20, HOLD=str(hold)))
    wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
    [server] = [
        p
        for p, cmd in left_of(data)
        if cmd.startswith(os.path.join(os.path.dirname(os.sys.executable), "nats-server"))
    ]
    os.kill(server, signal.SIGKILL)
    code, _, err, took = ended_within(proc, 30)
    print(f"the kernel exited {took:.2f} s after its nats-server was killed")
    assert code == 3, err
    assert "the embedded nats-server was killed by signal 9" in err
    assert "lightning-kernel resume" in err and "Traceback" not in err
    assert took < 15
    print(f"nothing left {assert_nothing_left(data):.2f} s later")
    [run] = runs_of(lk)
    assert run["status"] == "interrupted" and "nats-server" in run["message"]

    hold.unlink()
    done = resumed_to_the_end(lk)
    assert "counted to 20" in done.stdout
    types = [e["type"] for e in lk.json_lines("history", "latest")]
    assert types.count("work.worker_started") == 2 and types[-1] == "run.ended"
    assert_nothing_left(data)


def test_an_external_nats_killed_mid_run_ends_it_and_resume_carries_on_once_it_is_back(tmp_path, lk, cleanup):
    (tmp_path / "store").mkdir()
    nats = NatsServer(tmp_path / "store").start()
    try:
        lk.env.update(nats.env())
        data = lk.dir / "data"
        cleanup.append(data)
        hold = lk.dir / "hold"
        hold.touch()
        proc = lk.popen("run", "app", counting(lk, 20, HOLD=str(hold)))
        wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
        nats.kill()
        code, _, err, took = ended_within(proc, 30)
        print(f"the kernel exited {took:.2f} s after NATS was killed")
        assert code == 3, err
        assert f"lost NATS at {nats.url}" in err and "Traceback" not in err
        assert took < 15
        assert_nothing_left(data)
        [run] = runs_of(lk)
        assert run["status"] == "interrupted" and f"lost NATS at {nats.url}" in run["message"]

        # Without NATS, resume says so at once; with it back (same port, same store), it carries on.
        refused = lk("resume", "latest", timeout=30)
        assert refused.returncode == 1 and f"cannot reach NATS at {nats.url}" in refused.stderr
        nats.start()
        hold.unlink()
        done = resumed_to_the_end(lk)
        assert "counted to 20" in done.stdout
        assert [e["type"] for e in lk.json_lines("history", "latest")][-1] == "run.ended"
    finally:
        nats.stop()


class _Silent:
    """A TCP server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.conns.append(self.sock.accept()[0])

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["http-url", "http-server", "silent", "closed"])
def test_a_url_that_is_not_nats_is_a_clear_error_within_5_s(lk, http_port, kind):
    silent = _Silent()
    try:
        url = {
            "http-url": f"http://127.0.0.1:{http_port}",
            "http-server": f"nats://127.0.0.1:{http_port}",
            "silent": f"nats://127.0.0.1:{silent.port}",
            "closed": f"nats://127.0.0.1:{free_port()}",
        }[kind]
        app = counting(lk, 3)
        started = time.monotonic()
        proc = lk("run", "app", app, "--nats", url, timeout=30)
        took = time.monotonic() - started
    finally:
        silent.close()
    print(f"{kind}: exit {proc.returncode} in {took:.2f} s: {proc.stderr.strip()}")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: cannot reach NATS at {url}: "), proc.stderr
    assert {
        "http-url": "http:// is not a NATS URL",
        "http-server": "does not speak NATS",
        "silent": "it said nothing",
        "closed": "connection refused",
    }[kind] in proc.stderr
    assert took < 5 + 2.5, "5 s, and the interpreter's start"
    assert not (lk.dir / "count").exists()


# -- the database failing -----------------------------------------------------------------------------


def test_an_unreachable_postgresql_at_start_is_a_clear_error(lk):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    started = time.monotonic()
    proc = lk("run", "app", counting(lk, 3), "--db", url, timeout=60)
    took = time.monotonic() - started
    print(f"exit {proc.returncode} in {took:.2f} s: {proc.stderr.strip()[:300]}")
    assert proc.returncode == 1, proc.stdout
    assert "cannot reach" in proc.stderr and url.split("@")[1] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (lk.dir / "count").exists(), "no Work ran with nowhere to record it"
    assert took < 20


def test_a_full_sqlite_database_interrupts_the_run_and_resume_carries_on_once_freed(lk, tmpfs, cleanup):
    lk.env.update({"LK_DB": f"sqlite:///{tmpfs / 'kernel.db'}", "LK_RECORD_FAIL_AFTER_S": "1"})
    cleanup.append(lk.dir / "data")
    hold = lk.dir / "hold"
    hold.touch()
    proc = lk.popen("run", "app", counting(lk, 30, HOLD=str(hold)))
    wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
    filler = fill(tmpfs)
    code, _, err, took = ended_within(proc, 30)
    print(f"the kernel exited {took:.2f} s after the disk filled: {err.strip()[-300:]}")
    assert code == 3, err
    assert f"cannot record into database sqlite:///{tmpfs / 'kernel.db'}" in err
    assert "full" in err and "Traceback" not in err
    assert took < 15
    assert_nothing_left(lk.dir / "data")

    filler.unlink()
    hold.unlink()
    done = resumed_to_the_end(lk)
    assert "counted to 30" in done.stdout
    events = lk.json_lines("history", "latest")
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events}), "every event once, in order"
    assert events[0]["type"] == "run.created" and events[-1]["type"] == "run.ended"


def test_a_read_only_postgresql_interrupts_the_run_and_resume_carries_on_once_fixed(lk, pg_database, cleanup):
    lk.env.update({"LK_DB": pg_database, "LK_RECORD_FAIL_AFTER_S": "1"})
    cleanup.append(lk.dir / "data")
    name = pg_database.rsplit("/", 1)[1]
    admin = psycopg.connect(
        pg_database.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/test",
        autocommit=True,
    )
    hold = lk.dir / "hold"
    hold.touch()
    try:
        proc = lk.popen("run", "app", counting(lk, 30, HOLD=str(hold)))
        wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
        # A failover to a read-only server, as a client sees it: its sessions end, new ones are read-only.
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        code, _, err, took = ended_within(proc, 30)
        print(f"the kernel exited {took:.2f} s after the database turned read-only: {err.strip()[-300:]}")
        assert code == 3, err
        assert "cannot record into database postgresql+psycopg://" in err
        assert "read-only" in err and "Traceback" not in err
        assert took < 15
        assert_nothing_left(lk.dir / "data")
    finally:
        admin.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        admin.close()
    hold.unlink()
    done = resumed_to_the_end(lk)
    assert "counted to 30" in done.stdout


def test_a_run_that_ends_while_postgresql_is_unreachable_never_exits_0(lk, pg_database, cleanup):
    lk.env["LK_DB"] = pg_database
    cleanup.append(lk.dir / "data")
    name = pg_database.rsplit("/", 1)[1]
    admin = psycopg.connect(
        pg_database.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/test",
        autocommit=True,
    )
    hold = lk.dir / "hold"
    hold.touch()
    try:
        proc = lk.popen("run", "app", counting(lk, 5, HOLD=str(hold)))
        wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, proc=proc)
        # The server refuses the database from now on (as a server that went away would).
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        hold.unlink()  # the run ends now, with nowhere to record its end
        code, out, err, took = ended_within(proc, 60)
        print(f"exit {code} {took:.1f} s later: {err.strip()[-500:]}")
        assert "counted to 5" in out
        assert code == 3, err
        # Which comes first decides the words: the run's end (then its events are not recorded), or
        # the recorder's failure (then the kernel stops driving the run); either way it says why, and
        # the events wait in NATS for a resume.
        assert (
            "ended (succeeded), but its last events are not recorded: cannot record into database" in err
            or ("interrupted: " in err and "recording into database" in err)
        ), err
        assert "is not currently accepting connections" in err and "Traceback" not in err
    finally:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin.close()
    assert runs_of(lk)[0]["status"] == "running", "the database never heard of the end"
    # Once it is back, resume records what it missed, and says the run ended.
    again = lk("resume", "latest", timeout=60)
    assert again.returncode == 1 and "already ended (succeeded)" in again.stderr, again.stderr
    assert runs_of(lk)[0]["status"] == "succeeded"
    assert lk.json_lines("history", "latest")[-1]["type"] == "run.ended"


@pytest.mark.parametrize("then", ["wait", "sigterm"])
def test_a_full_disk_under_the_data_dir_ends_the_run_and_resume_carries_on_once_freed(tmpfs, cleanup, then):
    lk = LK(tmpfs)
    # The database is patient here (another test fills the database's disk alone): it is NATS that must
    # say the disk is full, its stream refusing the Work's events, whichever of the kernel's leases or
    # recorder would notice later.
    lk.env["LK_RECORD_FAIL_AFTER_S"] = "60"
    cleanup.append(tmpfs / "data")
    hold = tmpfs / "hold"
    hold.touch()
    proc = lk.popen("run", "app", counting(lk, 30, HOLD=str(hold)))
    wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
    filler = fill(tmpfs)
    if then == "sigterm":
        proc.send_signal(signal.SIGTERM)
    code, _, err, took = ended_within(proc, 30)
    print(f"the kernel exited {took:.2f} s after the disk filled ({code}): {err.strip()[-600:]}")
    kernel_says = [line for line in err.splitlines() if line.startswith(("run ", "carry on", "stopping"))]
    if then == "wait":
        assert code == 3, err
        # The Work's events are refused first: its worker stops (though its Work changes nothing more) and says
        # why, then the kernel, whose own events are refused too.
        assert "lightning-kernel worker root.w: NATS at " in err, err
        assert any(
            line.startswith("run ")
            and "interrupted: " in line
            and "its JetStream cannot store events" in line
            for line in kernel_says
        ), err
    else:
        assert code == 143, err
    assert took < 20
    assert_nothing_left(tmpfs / "data")

    filler.unlink()
    hold.unlink()
    done = resumed_to_the_end(lk)
    assert "counted to 30" in done.stdout
    events = lk.json_lines("history", "latest")
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events}), "every event once, in order"
    assert events[0]["type"] == "run.created" and events[-1]["type"] == "run.ended"
    # Neither the kernel nor a worker whose events the stream no longer takes dies with a traceback.
    assert "Traceback" not in err, err


# -- SIGTERM always works -----------------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["python starts", "nats-server starts", "nats-server is up"])
def test_sigterm_during_start_up(lk, cleanup, moment):
    data = lk.dir / "data"
    cleanup.append(data)
    proc = lk.popen("run", "app", counting(lk, 30))
    if moment == "python starts":
        time.sleep(0.2)
    elif moment == "nats-server starts":
        wait_until("the store folder", (data / "nats").exists, every=0.01, proc=proc)
    else:
        wait_until("kernel.json", (data / "kernel.json").exists, every=0.01, proc=proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err, took = ended_within(proc, 20)
    print(f"exit {code} {took:.2f} s after SIGTERM as {moment}: {err.strip()[-200:]}")
    # Killed by it before Python had set its handler, or ended by the handler.
    assert code in (-signal.SIGTERM, 143), err
    assert took < 5 and "Traceback" not in err
    assert_nothing_left(lk.dir / "data")


def test_sigterm_during_a_long_root_run(lk, cleanup):
    cleanup.append(lk.dir / "data")
    mark = lk.dir / "in-run"
    lk.env["MARK"] = str(mark)
    proc = lk.popen("run", "app", lk.app(SLEEPY))
    wait_until("root.run() sleeps", mark.exists, timeout=60, proc=proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err, took = ended_within(proc, 25)
    print(f"exit {code} {took:.2f} s after SIGTERM in root.run()")
    assert code == 143, err
    assert took < 10, "not the 30 s root.run() sleeps"
    assert "interrupted" in err
    assert_nothing_left(lk.dir / "data")
    [run] = runs_of(lk)
    assert run["status"] == "interrupted"


def test_sigterm_while_nats_is_gone(tmp_path, lk, cleanup):
    (tmp_path / "store").mkdir()
    nats = NatsServer(tmp_path / "store").start()
    try:
        lk.env.update(nats.env())
        cleanup.append(lk.dir / "data")
        proc = lk.popen("run", "app", counting(lk, 10_000))
        wait_until("the Work counts", lambda: (work_var(lk, "root.w", "n") or 0) >= 2, timeout=60, proc=proc)
        nats.kill()
        proc.send_signal(signal.SIGTERM)  # before the kernel has given up on NATS
        code, _, err, took = ended_within(proc, 25)
        print(f"exit {code} {took:.2f} s after SIGTERM with NATS gone: {err.strip()[-300:]}")
        assert code in (143, 3), err
        assert took < 10 and "Traceback" not in err
        assert_nothing_left(lk.dir / "data")
    finally:
        nats.stop()
